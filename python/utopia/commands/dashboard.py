"""`utopia dashboard [--api URL] [--token T]`: the Textual terminal dashboard (package utopia-tui)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from utopia.config import SettingsError, load


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("dashboard", help="the Textual terminal dashboard")
    parser.add_argument("--api", metavar="URL", help="the API's base URL (default: from api.host and api.port)")
    parser.add_argument("--token", metavar="T", help="a bearer token (default: $UTOPIA_API_TOKEN)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    url = args.api
    if url is None:
        try:
            settings = load(args.config)
        except SettingsError as exc:
            print(f"utopia dashboard: {exc}", file=sys.stderr)
            return 2
        host = settings.api.host if settings.api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        url = f"http://{host}:{settings.api.port}"
    token = args.token or os.environ.get("UTOPIA_API_TOKEN")
    try:
        import utopia_tui  # noqa: PLC0415 - Textual loads only for this command
    except ImportError:
        print("utopia dashboard: the utopia-tui package is not installed (pip install -e tui)", file=sys.stderr)
        return 2
    return utopia_tui.run(url, token)
