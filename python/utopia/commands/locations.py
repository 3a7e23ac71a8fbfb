"""`utopia locations load FILE`: load or update Dataset B (CSV, JSON lines, Parquet)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from utopia.config import Settings
from utopia.storage.connect import DatabaseUnavailable, add_database_flag, connect, fail, settings_from_args
from utopia.storage.locations import NOTIFY_CHANNEL, LocationsFileError, load_locations, read_locations


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("locations", help="manage Dataset B (locations)")
    sub = parser.add_subparsers(dest="locations_command", metavar="ACTION", required=True)
    load = sub.add_parser("load", help="upsert locations from a .csv, .jsonl or .parquet file (all or nothing)")
    load.add_argument("file", type=Path, metavar="FILE")
    add_database_flag(load)
    load.set_defaults(handler=handle_load)


def handle_load(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        rows = read_locations(args.file)
    except LocationsFileError as exc:
        return fail(str(exc))
    return asyncio.run(_load(settings, rows, args.file))


async def _load(settings: Settings, rows: list[tuple[int, str]], path: Path) -> int:
    try:
        conn = await connect(settings)
    except DatabaseUnavailable as exc:
        return fail(str(exc))
    try:
        report = await load_locations(conn, rows)
    except asyncpg.UndefinedTableError:
        return fail("table utopia.locations is missing: run `utopia migrate` first")
    except asyncpg.PostgresError as exc:
        return fail(f"loading {path} failed, nothing loaded: {exc}")
    finally:
        await conn.close()
    print(
        f"{path}: {report.rows} locations: {report.inserted} new, {report.updated} updated, "
        f"{report.unchanged} unchanged" + (f" (notified {NOTIFY_CHANNEL})" if report.inserted + report.updated else "")
    )
    return 0
