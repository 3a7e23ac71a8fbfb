"""`utopia bench`: the end-to-end benchmark on this machine (own NATS and PostgreSQL servers).

Publisher process -> JetStream -> ingest -> PostgreSQL at 10k, 100k events/s and flat out, with
the Rust core and with the pure-Python reference, then a bare COPY of the same rows: one table of
events/s, publish-to-commit latency and memory.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("bench", help="run the end-to-end benchmark")
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per run (default 10)")
    parser.add_argument("--rates", default="10000,100000,max", help="target rates in events/s; max: flat out")
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="instead: drain a backlog with 1 and 2 workers, and on a 3-node cluster",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="--scale-out backlog per layout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported only when asked: the benchmark pulls in the embedded servers and the reference core.
    from utopia.benchmarks import pipeline, scale_out  # noqa: PLC0415

    asyncio.run(scale_out.main(args) if args.scale_out else pipeline.main(args))
    return 0
