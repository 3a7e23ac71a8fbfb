"""A private PostgreSQL for tests: see `utopia.embedded.postgres`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping

import asyncpg

from utopia.config import StorageSettings
from utopia.embedded.postgres import PostgresServer, find_bindir, free_port
from utopia.storage import migrations
from utopia.storage.locations import load_locations

__all__ = ["PostgresServer", "find_bindir", "free_port", "migrated_server"]


@contextlib.contextmanager
def migrated_server(template: str, locations: Mapping[int, str]) -> Iterator[PostgresServer]:
    """A server whose database `template` is migrated (plain flavour) and holds `locations`; tests
    clone it per test. synchronous_commit stays on, as in production: ingest acknowledges messages
    once their rows are committed, and the outage tests crash the server right after commits."""
    with PostgresServer(settings={"synchronous_commit": "on"}) as server:
        server.create_database(template)

        async def migrate() -> None:
            conn = await asyncpg.connect(server.url(template))
            try:
                await migrations.run(conn, StorageSettings(flavour="plain"))
                await load_locations(conn, list(locations.items()))
            finally:
                await conn.close()

        asyncio.run(migrate())
        yield server
