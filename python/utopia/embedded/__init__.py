"""Private NATS and PostgreSQL servers on free loopback ports with their own data folders.

Used by `utopia demo` (data kept in the project's `.data/` between runs) and by the tests and
benchmarks (temporary folders). Never touches servers already running on the default ports.
"""
