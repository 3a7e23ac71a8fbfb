"""Fixtures: a private PostgreSQL for the session, a migrated database and a NATS server per test."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.nats_server import NatsServer
from tests.support.postgres import PostgresServer
from utopia.config import Settings, StorageSettings
from utopia.ingest.provisioning import provision
from utopia.storage import migrations
from utopia.storage.locations import load_locations

_names = itertools.count()
LOCATIONS = {1: "Old Town", 2: "Harbour", 3: "Market Square"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    # Ingest acknowledges messages once their rows are committed, which needs synchronous_commit
    # on (PostgreSQL's default): the outage test crashes the server right after commits.
    with PostgresServer(settings={"synchronous_commit": "on"}) as server:
        server.create_database("ingest_template")

        async def migrate() -> None:
            conn = await asyncpg.connect(server.url("ingest_template"))
            try:
                await migrations.run(conn, StorageSettings(flavour="plain"))
                await load_locations(conn, list(LOCATIONS.items()))
            finally:
                await conn.close()

        asyncio.run(migrate())
        yield server


@pytest.fixture
def db_url(pg_server: PostgresServer) -> Iterator[str]:
    name = f"ingest_{next(_names)}"
    yield pg_server.create_database(name, template="ingest_template")
    pg_server.drop_database(name)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


async def provisioned(settings: Settings) -> Settings:
    await provision(settings)
    return settings
