"""`utopia edge`: the edge agent, the same code and flags as the standalone `utopia-edge`."""

from __future__ import annotations

import argparse
from typing import Any

from utopia_edge.cli import DESCRIPTION, add_arguments, run


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "edge",
        help="run an edge agent (store-and-forward publisher of detections)",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)
