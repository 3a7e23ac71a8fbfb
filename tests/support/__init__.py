"""Real servers for tests: each test session starts its own on free loopback ports."""
