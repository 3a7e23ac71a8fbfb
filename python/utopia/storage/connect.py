"""Opening a database connection for the storage commands, with errors a person can act on."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from utopia.config import Settings, load

__all__ = ["DatabaseUnavailable", "add_database_flag", "connect", "settings_from_args"]


class DatabaseUnavailable(RuntimeError):
    """The database named by `database.url` cannot be reached."""


def add_database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", metavar="URL", help="PostgreSQL URL (env UTOPIA_DATABASE_URL; setting database.url)"
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load(args.config, overrides={"database.url": getattr(args, "database_url", None)})


async def connect(settings: Settings) -> Any:
    """An asyncpg connection to `database.url`; `DatabaseUnavailable` names the setting on failure."""
    try:
        return await asyncpg.connect(settings.database.url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to database.url (UTOPIA_DATABASE_URL): {exc}") from exc


def fail(message: str) -> int:
    print(f"utopia: {message}", file=sys.stderr)
    return 1
