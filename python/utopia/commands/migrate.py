"""`utopia migrate`: database schema migrations, then NATS stream/consumer provisioning."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any

import asyncpg

from utopia.config import Settings
from utopia.storage import migrations
from utopia.storage.connect import DatabaseUnavailable, add_database_flag, connect, fail, settings_from_args

# NATS provisioning (streams DETECTIONS, DETECTIONS_DLQ, consumers) belongs to the ingest package.
# Hook: that module defines `async def provision(settings: Settings) -> list[str]` (lines to print).
PROVISIONING_MODULE = "utopia.ingest.provisioning"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "migrate", help="apply database migrations and provision NATS streams (idempotent)"
    )
    add_database_flag(parser)
    parser.add_argument("--skip-nats", action="store_true", help="only migrate the database")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    return asyncio.run(_migrate(settings, skip_nats=args.skip_nats))


async def _migrate(settings: Settings, *, skip_nats: bool) -> int:
    try:
        conn = await connect(settings)
    except DatabaseUnavailable as exc:
        return fail(str(exc))
    try:
        report = await migrations.run(conn, settings.storage)
    except (migrations.MigrationError, asyncpg.PostgresError) as exc:
        return fail(f"migration failed: {exc}")
    finally:
        await conn.close()
    print(f"database: {report.flavour} flavour, applied {len(report.applied)}, up to date {report.already_applied}")
    for name in report.applied:
        print(f"  applied {name}")
    for line in report.policies:
        print(f"  {line}")
    if skip_nats:
        return 0
    return await provision_nats(settings)


async def provision_nats(settings: Settings) -> int:
    """Run the ingest package's provisioning hook, if it is installed."""
    try:
        module = importlib.import_module(PROVISIONING_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != PROVISIONING_MODULE and not PROVISIONING_MODULE.startswith(f"{exc.name}."):
            raise
        print(f"nats: skipped ({PROVISIONING_MODULE} is not part of this build)")
        return 0
    lines: list[str] = await module.provision(settings)
    for line in lines:
        print(f"nats: {line}")
    return 0
