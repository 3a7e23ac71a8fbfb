"""`utopia token create --role viewer|operator [--name N]`: prints a new API token once; only its
SHA-256 hash is stored (table `utopia.api_tokens`)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from utopia.config import Settings
from utopia.storage.connect import DatabaseUnavailable, add_database_flag, connect, fail, settings_from_args


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("token", help="manage API bearer tokens")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token and print it once (only its hash is stored)")
    create.add_argument("--role", choices=("viewer", "operator"), required=True, help="viewer: read-only")
    create.add_argument("--name", help="a label for the token (default: role and a short id)")
    add_database_flag(create)
    create.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_create(settings_from_args(args), args.role, args.name))


async def _create(settings: Settings, role: str, name: str | None) -> int:
    from utopia_server.tokens import create_token  # noqa: PLC0415 - the server package is optional elsewhere

    try:
        conn = await connect(settings)
    except DatabaseUnavailable as exc:
        return fail(str(exc))
    try:
        token = await create_token(conn, "operator" if role == "operator" else "viewer", name)
    except asyncpg.PostgresError as exc:
        return fail(f"cannot store the token: {exc}")
    finally:
        await conn.close()
    print(token)
    return 0
