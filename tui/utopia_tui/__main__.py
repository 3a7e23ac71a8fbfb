"""`python -m utopia_tui --api URL --token T`: the dashboard without the `utopia` command."""

from __future__ import annotations

import argparse
import os

from utopia_tui import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="utopia-tui", description="Utopia terminal dashboard")
    parser.add_argument("--api", default=os.environ.get("UTOPIA_API_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("UTOPIA_API_TOKEN"))
    args = parser.parse_args()
    return run(args.api, args.token)


if __name__ == "__main__":
    raise SystemExit(main())
