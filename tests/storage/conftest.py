"""Fixtures: one private PostgreSQL per session, a fresh database per test (cloned from a template)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.support.postgres import PostgresServer
from utopia.config import StorageSettings
from utopia.storage import migrations

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        server.create_database("utopia_template")

        async def migrate() -> None:
            conn = await asyncpg.connect(server.url("utopia_template"))
            try:
                await migrations.run(conn, StorageSettings(flavour="plain"))
            finally:
                await conn.close()

        asyncio.run(migrate())
        yield server


@pytest.fixture
def empty_db_url(pg_server: PostgresServer) -> Iterator[str]:
    """A database with nothing in it."""
    name = f"t_empty_{next(_names)}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


@pytest.fixture
def db_url(pg_server: PostgresServer) -> Iterator[str]:
    """A database already migrated (plain flavour)."""
    name = f"t_{next(_names)}"
    yield pg_server.create_database(name, template="utopia_template")
    pg_server.drop_database(name)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(db_url)
    yield connection
    await connection.close()
