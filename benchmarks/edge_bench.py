"""Edge agent throughput: `--simulate max` through the outbox into JetStream, on one core.

Starts its own nats-server (JetStream, file storage, temp dir) and provisions DETECTIONS, then
runs the agent in this process pinned to one CPU (nats-server gets the others), with the default
settings (fsync policy included), until COUNT events are acknowledged. Prints a table per run and
the median. Run:  .venv/bin/python benchmarks/edge_bench.py [--count N] [--runs 3] [--fsync normal]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` from a checkout

from tests.support.nats_server import NatsServer, create_detections_stream

from utopia_edge.agent import EXIT_OK, Agent
from utopia_edge.settings import load_edge_settings
from utopia_edge.sources.simulate import SimulatedSource


def pin(pid: int, cpus: set[int]) -> None:
    if hasattr(os, "sched_setaffinity") and cpus:
        os.sched_setaffinity(pid, cpus)


async def one_run(server: NatsServer, workdir: Path, count: int, overrides: dict[str, object]) -> tuple[float, int]:
    settings = load_edge_settings(
        env={},
        overrides={
            "nats.url": server.url,
            "edge.outbox_path": str(workdir / "outbox.sqlite3"),
            "edge.stats_interval_s": 0,
            **overrides,
        },
    )
    agent = Agent(settings, SimulatedSource(None, count=count))
    started = time.perf_counter()
    code = await agent.run()
    elapsed = time.perf_counter() - started
    if code != EXIT_OK or agent.stats.events_acked != count:
        raise SystemExit(f"run failed: exit {code}, {agent.stats.events_acked} of {count} acknowledged")
    return elapsed, agent.stats.batches_acked


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000, help="events per run (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fsync", choices=["normal", "full", "off"], help="outbox fsync policy (default: the default)")
    parser.add_argument("--format", choices=["msgpack", "json"], help="wire format (default: the default, msgpack)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    overrides: dict[str, object] = {}
    if args.fsync:
        overrides["edge.fsync"] = args.fsync
    if args.format:
        overrides["edge.format"] = args.format
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    agent_cpu = {cpus[0]} if cpus else set()
    with tempfile.TemporaryDirectory(prefix="utopia-edge-bench-") as tmp, NatsServer(Path(tmp) / "nats") as server:
        if len(cpus) > 1:
            pin(server.pid or 0, set(cpus[1:]))  # the server on the other cores, the agent alone on one
        pin(0, agent_cpu)
        await create_detections_stream(server.url)
        settings = load_edge_settings(env={}, overrides=overrides).edge
        print(f"edge agent benchmark: {args.count:,} simulated events/run, agent on CPU {sorted(agent_cpu)},"
              f" fsync={settings.fsync}, format={settings.format}, batch_size={settings.batch_size},"
              f" max_in_flight={settings.max_in_flight}")  # fmt: skip
        print(f"{'run':>3}  {'seconds':>8}  {'events/s':>10}  {'batches':>8}  {'MB/s':>6}")
        rates: list[float] = []
        for run in range(1, args.runs + 1):
            workdir = Path(tmp) / f"run{run}"
            workdir.mkdir()
            elapsed, batches = await one_run(server, workdir, args.count, overrides)
            rate = args.count / elapsed
            rates.append(rate)
            # ~115 bytes per MessagePack event with the simulator's item names
            print(f"{run:>3}  {elapsed:>8.2f}  {rate:>10,.0f}  {batches:>8,}  {rate * 115 / 1e6:>6.1f}")
        print(f"median: {statistics.median(rates):,.0f} events/s (target >= 100,000)")


if __name__ == "__main__":
    asyncio.run(main())
