"""The `utopia` command line. Each subcommand lives in its own module under `utopia.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from utopia import commands
from utopia.config import SettingsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="utopia", description="Real-time camera detection analytics.")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (env UTOPIA_CONFIG); env and flags win")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Commands register themselves, so adding one never touches this file.
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except SettingsError as exc:
        print(f"utopia: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
