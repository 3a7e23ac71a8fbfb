"""Versioned schema migrations: SQL files shipped in this package, applied in order, recorded.

Files live in `sql/common/` (both flavours) and `sql/<flavour>/`, named `NNN_name.sql`; versions are
unique across a flavour's two folders. Each file runs in its own transaction together with its
row in `utopia.schema_migrations`, so a failed file leaves nothing behind. A checksum guards
against editing a file after it was applied. Concurrent runs are serialised by an advisory lock.
After the files, `apply_policies` (re)applies what depends on settings (partitions or chunk
width, retention, compression, refresh), so re-running `utopia migrate` with new settings takes
effect. Everything is idempotent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Literal

from utopia.config import StorageSettings
from utopia.storage import maintenance

__all__ = ["Flavour", "Migration", "MigrationError", "MigrationReport", "available", "current_flavour", "run"]

Flavour = Literal["plain", "timescaledb"]
Conn = Any  # asyncpg.Connection (asyncpg ships no type information)

_LOCK_KEY = 0x7574_6F70_6961  # "utopia": serialises concurrent `utopia migrate` runs
_FILE_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS utopia;
CREATE TABLE IF NOT EXISTS utopia.schema_migrations (
    version int PRIMARY KEY,
    name text NOT NULL,
    flavour text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """The schema cannot be brought up to date; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    folder: str  # "common" or the flavour
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(slots=True)
class MigrationReport:
    flavour: Flavour
    applied: list[str] = field(default_factory=list)
    already_applied: int = 0
    policies: list[str] = field(default_factory=list)


def available(flavour: Flavour) -> list[Migration]:
    """The migrations of `flavour`, in version order."""
    root = resources.files("utopia.storage").joinpath("sql")
    found: dict[int, Migration] = {}
    for folder in ("common", flavour):
        for entry in root.joinpath(folder).iterdir():
            match = _FILE_RE.match(entry.name)
            if match is None:
                continue
            version = int(match.group(1))
            if version in found:
                raise MigrationError(f"two migrations with version {version:03d}: {found[version].name}, {entry.name}")
            found[version] = Migration(version, entry.name, folder, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def current_flavour(conn: Conn) -> Flavour | None:
    """The flavour the database was migrated with, or None before the first migration."""
    exists = await conn.fetchval("SELECT to_regclass('utopia.schema_migrations') IS NOT NULL")
    if not exists:
        return None
    rows = await conn.fetch("SELECT DISTINCT flavour FROM utopia.schema_migrations WHERE flavour <> 'common'")
    flavours = {r["flavour"] for r in rows}
    if len(flavours) > 1:
        raise MigrationError(f"schema_migrations mixes flavours {sorted(flavours)}; the database needs repair")
    if not flavours:
        return None
    found = flavours.pop()
    if found not in ("plain", "timescaledb"):
        raise MigrationError(f"schema_migrations names an unknown flavour {found!r}")
    return "plain" if found == "plain" else "timescaledb"


async def _detect(conn: Conn, wanted: str) -> Flavour:
    available_ts = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
    )
    if wanted == "plain":
        return "plain"
    if wanted == "timescaledb" and not available_ts:
        raise MigrationError(
            "storage.flavour is 'timescaledb' but the timescaledb extension is not installed on the server "
            "(install it, or set storage.flavour = 'plain' / UTOPIA_STORAGE_FLAVOUR=plain)"
        )
    return "timescaledb" if available_ts else "plain"


async def run(conn: Conn, settings: StorageSettings, *, now: datetime | None = None) -> MigrationReport:
    """Bring the schema up to date and apply the storage policies; safe to run any number of times."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_BOOTSTRAP)
        recorded = await current_flavour(conn)
        flavour = recorded or await _detect(conn, settings.flavour)
        if recorded is not None and settings.flavour not in ("auto", recorded):
            raise MigrationError(
                f"storage.flavour is {settings.flavour!r} but this database was migrated as {recorded!r}; "
                "a flavour cannot be changed in place"
            )
        report = MigrationReport(flavour=flavour)
        applied = {
            r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM utopia.schema_migrations")
        }
        for migration in available(flavour):
            done = applied.get(migration.version)
            if done is not None:
                if done["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name} changed after it was applied (as {done['name']}); "
                        "add a new migration instead of editing an applied one"
                    )
                report.already_applied += 1
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO utopia.schema_migrations (version, name, flavour, checksum) VALUES ($1, $2, $3, $4)",
                    migration.version,
                    migration.name,
                    migration.folder,
                    migration.checksum,
                )
            report.applied.append(migration.name)
        report.policies = await maintenance.apply_policies(conn, flavour, settings, now=now)
        return report
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
