"""`python -m utopia_tui --api URL --token T`: the dashboard without the `utopia` command."""

from __future__ import annotations

import argparse
import os

from utopia_tui import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="utopia-dashboard", description="Utopia terminal dashboard")
    parser.add_argument(
        "--api",
        metavar="URL",
        default=os.environ.get("UTOPIA_API_URL", "http://127.0.0.1:8080"),
        help="the API's base URL (default: $UTOPIA_API_URL or http://127.0.0.1:8080)",
    )
    parser.add_argument("--token", metavar="T", default=os.environ.get("UTOPIA_API_TOKEN"), help="a bearer token")
    args = parser.parse_args()
    return run(args.api, args.token)


if __name__ == "__main__":
    raise SystemExit(main())
