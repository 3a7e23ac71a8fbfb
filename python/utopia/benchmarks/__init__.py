"""Benchmarks run by `make bench` (and later `utopia bench`); never by the test suite."""
