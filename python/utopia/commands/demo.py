"""`utopia demo [--headless]`: the whole system on this machine with embedded defaults.

A local nats-server with JetStream and a private PostgreSQL (or `UTOPIA_DATABASE_URL`), both on
free ports with data in `.data/demo`, migrations, a sample Dataset B, ingest, three simulated
camera sites (10,000 events/s together, 2 % re-sent, a trickle of bad events) and the API when
this build has it. Ctrl-C or SIGTERM stops everything, edge agents first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats

from utopia import config, logs
from utopia.demo.system import DemoSystem
from utopia.ingest.provisioning import ProvisioningConflict
from utopia.storage import queries
from utopia_edge.contract import DLQ_STREAM


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("demo", help="run the whole system on this machine")
    parser.add_argument("--headless", action="store_true", help="no dashboard: print a summary line instead")
    parser.add_argument("--data-dir", default=".data/demo", help="where servers keep their data (default .data/demo)")
    parser.add_argument("--seconds", type=float, help="stop by itself after this long (default: until Ctrl-C)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    logs.setup(settings.log_level)
    system = DemoSystem(Path(args.data_dir).resolve(), database_url=os.environ.get("UTOPIA_DATABASE_URL"))
    try:
        return asyncio.run(_main(system, args))
    except KeyboardInterrupt:
        return 0
    except ProvisioningConflict as exc:
        # A data folder from an older version: its streams predate the current settings.
        print(f"utopia demo: {exc}\nutopia demo: remove {system.data_dir} to start afresh", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C, or the terminal closing, must not cut the clean-up short and orphan
        # the servers and agents (they run in sessions of their own).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        print("utopia demo: stopping (edge agents first; a few seconds)", flush=True)
        system.stop()
        print("utopia demo: stopped", flush=True)


async def _main(system: DemoSystem, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    settings = await system.start(args.config)
    print(f"utopia demo: NATS {settings.nats.url}, database {settings.database.url}", flush=True)
    print(f"utopia demo: logs in {system.data_dir / 'logs'}", flush=True)
    if system.api_url:
        print(f"utopia demo: API {system.api_url}/api/v1  token {system.api_token}", flush=True)
    dashboard = None if args.headless else _dashboard(system)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    previous: tuple[float, int] | None = None
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            break
        if dashboard is not None and dashboard.poll() is not None:
            break
        if exited := system.exited():
            names = ", ".join(f"{c.name} (exit {c.proc.returncode}, log {c.log_path})" for c in exited)
            print(f"utopia demo: stopped because a process ended: {names}", file=sys.stderr, flush=True)
            return 1
        if dashboard is None:
            previous = await _summary(settings, previous)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await stop.wait()
    if dashboard is not None and dashboard.poll() is None:
        dashboard.terminate()
        dashboard.wait(timeout=10)
    return 0


def _dashboard(system: DemoSystem) -> subprocess.Popen[bytes] | None:
    """The terminal dashboard in the foreground, when this build has it."""
    if system.api_url is None or importlib.util.find_spec("utopia.commands.dashboard") is None:
        print("utopia demo: the dashboard is not part of this build; printing a summary instead", flush=True)
        return None
    command = [sys.executable, "-m", "utopia.cli", "dashboard", "--api", system.api_url]
    if system.api_token:
        command += ["--token", system.api_token]
    return subprocess.Popen(command)


async def _summary(settings: config.Settings, previous: tuple[float, int] | None) -> tuple[float, int]:
    try:
        conn = await asyncpg.connect(settings.database.url, timeout=5)
        try:
            stats = await queries.ingest_stats(conn, datetime.now(UTC))
        finally:
            await conn.close()
        nc = await nats.connect(settings.nats.url, max_reconnect_attempts=1)
        try:
            dead = (await nc.jetstream().stream_info(DLQ_STREAM)).state.messages
        finally:
            await nc.close()
    except (OSError, asyncpg.PostgresError, nats.errors.Error) as exc:
        print(f"utopia demo: summary unavailable ({exc!r})", flush=True)
        return previous or (time.monotonic(), 0)
    now = time.monotonic()
    rate = (stats.received - previous[1]) / (now - previous[0]) if previous else 0.0
    print(
        f"{datetime.now().strftime('%H:%M:%S')}  {rate:>8,.0f} events/s  received {stats.received:,}  "
        f"stored {stats.stored:,}  duplicates {stats.duplicates:,}  rejected {stats.rejected:,} "
        f"(dead letters {dead:,})  unmatched {stats.unmatched:,}",
        flush=True,
    )
    return now, stats.received
