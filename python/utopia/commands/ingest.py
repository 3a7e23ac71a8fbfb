"""`utopia ingest`: run an ingest worker until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from utopia import config, logs
from utopia.ingest.worker import IngestError, Worker


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("ingest", help="run an ingest worker")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (setting ingest.metrics_port)")
    parser.add_argument("--consumer", help="base name of the durable consumers (setting ingest.consumer)")
    parser.add_argument("--worker-id", help="this worker's name in partition leases (setting ingest.worker_id)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load(
        args.config,
        overrides={
            "ingest.metrics_port": args.metrics_port,
            "ingest.consumer": args.consumer,
            "ingest.worker_id": args.worker_id,
        },
    )
    logs.setup(settings.log_level)
    try:
        asyncio.run(_main(settings))
    except IngestError as exc:
        print(f"utopia ingest: {exc}", file=sys.stderr)
        return 1
    return 0


async def _main(settings: config.Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(settings)
    running = asyncio.create_task(worker.run(stop))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([running, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not running.done() and not worker.consuming.is_set():
        # Still waiting for NATS or the database: nothing is in flight, so stop right away.
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        return
    await running
