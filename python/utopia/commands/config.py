"""`utopia config check [--config FILE] [--edge]`: load the settings as a service would, and say so.

Deployment tools validate a rendered file with it before putting it in place (the Ansible roles
use it as the template's `validate` command); a bad setting exits 2 with the message that names it.
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from utopia import config
from utopia_edge.settings import load_edge_settings

SECRET_FIELDS = frozenset({"password", "token"})


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("config", help="check a settings file")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="load the settings (file < UTOPIA_* env) like a service would; exit 2 naming a bad setting"
    )
    # SUPPRESS: `utopia --config F config check` keeps working when the flag is not repeated here.
    check.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML settings file to check")
    check.add_argument("--edge", action="store_true", help="check the edge agent's settings instead of the core's")
    check.add_argument("--show", action="store_true", help="print the effective settings (secrets masked)")
    check.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings: msgspec.Struct = load_edge_settings(args.config) if args.edge else config.load(args.config)
    if args.show:
        print(masked(msgspec.to_builtins(settings)))
    print(f"{'edge' if args.edge else 'core'} settings OK{f' ({args.config})' if args.config else ''}")
    return 0


def masked(value: object) -> object:
    """The settings as plain data with every password and token replaced by `***`."""
    if isinstance(value, dict):
        return {
            key: "***" if key in SECRET_FIELDS and item is not None else masked(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value
