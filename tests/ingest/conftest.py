"""Fixtures: a private PostgreSQL for the session, a migrated database and a NATS server per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nats_server import NatsServer
from tests.support.postgres import PostgresServer, migrated_server
from utopia.config import Settings
from utopia.ingest.provisioning import provision

_names = itertools.count()
LOCATIONS = {1: "Old Town", 2: "Harbour", 3: "Market Square"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with migrated_server("ingest_template", LOCATIONS) as server:
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
