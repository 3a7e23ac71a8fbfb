"""A private PostgreSQL for tests: see `utopia.embedded.postgres`."""

from utopia.embedded.postgres import PostgresServer, find_bindir, free_port

__all__ = ["PostgresServer", "find_bindir", "free_port"]
