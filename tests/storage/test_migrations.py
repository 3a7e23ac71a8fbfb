"""`utopia migrate` and the migrations runner: idempotent, guarded, flavour-aware."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.support.postgres import free_port
from utopia import cli
from utopia.config import StorageSettings
from utopia.storage import migrations

pytestmark = pytest.mark.timeout(60)


async def _tables(conn: Any) -> set[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'utopia' AND table_name NOT LIKE 'detections_p%'"
    )
    return {r[0] for r in rows}


async def test_migrate_twice_is_idempotent(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        first = await migrations.run(conn, StorageSettings())
        assert first.flavour == "plain"  # no timescaledb on this server
        assert first.applied == ["001_base.sql", "002_detections.sql", "003_api_tokens.sql", "004_partition_owners.sql"]
        assert any("created partition" in line for line in first.policies)
        tables = await _tables(conn)
        assert {
            "locations",
            "detections",
            "consumer_progress",
            "rollup_minute",
            "rollup_hour",
            "schema_migrations",
        } <= tables
        second = await migrations.run(conn, StorageSettings())
        assert second.applied == []
        assert second.already_applied == 4
        assert await _tables(conn) == tables
        assert await migrations.current_flavour(conn) == "plain"
    finally:
        await conn.close()


async def test_edited_migration_is_refused(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = migrations.available

    def edited(flavour: migrations.Flavour) -> list[migrations.Migration]:
        found = original(flavour)
        return [migrations.Migration(m.version, m.name, m.folder, m.sql + "\n-- edited") for m in found]

    monkeypatch.setattr(migrations, "available", edited)
    conn = await asyncpg.connect(db_url)
    try:
        with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
            await migrations.run(conn, StorageSettings())
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = migrations.available

    def broken(flavour: migrations.Flavour) -> list[migrations.Migration]:
        found = original(flavour)
        return [
            *found[:1],
            migrations.Migration(2, "002_broken.sql", "plain", "CREATE TABLE utopia.half (a int); SELEC 1;"),
        ]

    monkeypatch.setattr(migrations, "available", broken)
    conn = await asyncpg.connect(empty_db_url)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await migrations.run(conn, StorageSettings())
        assert await conn.fetchval("SELECT to_regclass('utopia.half')") is None
        assert await conn.fetchval("SELECT count(*) FROM utopia.schema_migrations") == 1
    finally:
        await conn.close()


async def test_timescaledb_required_but_missing(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        with pytest.raises(migrations.MigrationError, match=r"storage\.flavour"):
            await migrations.run(conn, StorageSettings(flavour="timescaledb"))
    finally:
        await conn.close()


async def test_flavour_cannot_change_in_place(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        with pytest.raises(migrations.MigrationError, match="migrated as 'plain'"):
            await migrations.run(conn, StorageSettings(flavour="timescaledb"))
    finally:
        await conn.close()


def test_cli_migrate_twice(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["migrate", "--database-url", empty_db_url, "--skip-nats"]) == 0
    out = capsys.readouterr().out
    assert "applied 4" in out
    assert "nats" not in out
    assert cli.main(["migrate", "--database-url", empty_db_url, "--skip-nats"]) == 0
    assert "applied 0, up to date 4" in capsys.readouterr().out


def test_cli_migrate_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["migrate", "--database-url", f"postgresql://x@127.0.0.1:{free_port()}/x"]) == 1
    assert "database.url" in capsys.readouterr().err


def test_cli_bad_storage_setting(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("UTOPIA_STORAGE_RETENTION_DAYS", "zero")
    assert cli.main(["migrate"]) == 2
    assert "storage.retention_days" in capsys.readouterr().err
