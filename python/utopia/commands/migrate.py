"""`utopia migrate`: database schema migrations, then NATS stream/consumer provisioning."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg
import nats.errors

from utopia.config import Settings
from utopia.ingest.provisioning import ProvisioningConflict, provision
from utopia.storage import migrations
from utopia.storage.connect import DatabaseUnavailable, add_database_flag, connect, fail, settings_from_args


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
    try:
        lines = await provision(settings)
    except ProvisioningConflict as exc:
        return fail(str(exc))
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        return fail(f"cannot provision NATS at nats.url (UTOPIA_NATS_URL): {exc!r}; use --skip-nats to migrate only")
    for line in lines:
        print(f"nats: {line}")
    return 0
