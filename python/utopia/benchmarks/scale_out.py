"""Scale-out: ingest throughput with 1 and 2 worker processes over a partitioned stream.

For each layout a fresh database and stream are set up (4 partitions), a backlog of MessagePack
events (500 per message, 5 % re-sent on their own location's subject) is published first, then
the workers (`utopia ingest` processes) are started and timed from the moment every partition has
an owner until the backlog is acknowledged. Draining a backlog measures what ingest can do without
sharing the 2 cores with a publisher. Layouts: one NATS node with 1 worker and with 2 workers, and
a 3-node cluster with R3 streams and 2 workers (replication's cost on the same machine).

    utopia bench --scale-out [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats

from utopia import config
from utopia.benchmarks.core import MSGPACK
from utopia.embedded.nats import NatsCluster
from utopia.embedded.postgres import PostgresServer
from utopia.ingest.provisioning import provision
from utopia.ingest.status import partition_status
from utopia.storage import migrations
from utopia.storage.locations import load_locations
from utopia_edge.contract import DETECTIONS_STREAM

LOCATIONS = [(oid, f"Location {oid}") for oid in range(1, 31)]
PER_MESSAGE = 500
PARTITIONS = 4
BASE_MS = 1_764_000_000_000


@dataclass(frozen=True)
class Layout:
    name: str
    nodes: int
    workers: int


LAYOUTS = [Layout("1 node, 1 worker", 1, 1), Layout("1 node, 2 workers", 1, 2), Layout("3 nodes R3, 2 workers", 3, 2)]


def site_messages(events: int, seed: int = 5) -> list[tuple[str, bytes]]:
    """Copies of a detection come again from its own location, as camera sites re-send."""
    rng = random.Random(seed)
    recent: dict[int, list[int]] = {oid: [] for oid, _ in LOCATIONS}
    next_id = 1
    out = []
    for index in range(events // PER_MESSAGE):
        location = rng.randint(1, len(LOCATIONS))
        rows = []
        for _ in range(PER_MESSAGE):
            if recent[location] and rng.random() < 0.05:
                detection = rng.choice(recent[location][-2000:])
            else:
                detection, next_id = next_id, next_id + 1
                recent[location].append(detection)
            rows.append(
                {
                    "geographical_location_oid": location,
                    "video_camera_oid": location * 10 + rng.randint(1, 4),
                    "detection_oid": detection,
                    "item_name": rng.choice(("person", "car", "bicycle", "bus", "dog")),
                    "timestamp_detected": BASE_MS + index * 50 + rng.randint(0, 999),
                }
            )
        out.append((f"utopia.detections.{location}", msgspec.msgpack.encode(rows)))
    return out


async def publish_backlog(url: str, messages: list[tuple[str, bytes]]) -> None:
    nc = await nats.connect(servers=url.split(","))
    js = nc.jetstream()
    window = 256
    for start in range(0, len(messages), window):
        await asyncio.gather(
            *(
                js.publish(s, p, headers={"Content-Type": MSGPACK}, timeout=30)
                for s, p in messages[start : start + window]
            )
        )
    await nc.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and its live children (the PostgreSQL postmaster and its backends)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == root or int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def start_worker(url: str, db: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UTOPIA_")}
    env.update(
        UTOPIA_NATS_URL=url,
        UTOPIA_DATABASE_URL=db,
        UTOPIA_STREAMS_PARTITIONS=str(PARTITIONS),
        UTOPIA_INGEST_WORKER_ID=name,
        UTOPIA_INGEST_METRICS_PORT="0",
        UTOPIA_INGEST_LEASE_S="5",
        UTOPIA_LOG_LEVEL="warning",
    )
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "utopia.cli", "ingest"], env=env, stderr=out)


async def one_layout(
    layout: Layout, pg: PostgresServer, messages: list[tuple[str, bytes]], root: Path
) -> dict[str, Any]:
    db = pg.create_database(f"scale_{layout.nodes}_{layout.workers}", template="scale_template")
    with NatsCluster(root / f"nats-{layout.nodes}-{layout.workers}", layout.nodes, name="bench") as cluster:
        await cluster.wait_for_jetstream()
        overrides = {
            "nats.url": cluster.url, "database.url": db, "streams.partitions": PARTITIONS,
            "streams.replicas": layout.nodes, "ingest.lease_s": 5.0,
        }  # fmt: skip
        await provision(config.load(env={}, overrides=overrides))
        consumers = [f"ingest-{p}" for p in range(PARTITIONS)]
        # Paused consumers hold the backlog until every worker has its share of the partitions.
        nc = await nats.connect(servers=cluster.url.split(","))
        js = nc.jetstream()
        for name in consumers:
            await js.pause_consumer(DETECTIONS_STREAM, name, "2100-01-01T00:00:00Z")
        await publish_backlog(cluster.url, messages)
        workers = [
            start_worker(cluster.url, db, f"w{i}", root / f"worker-{layout.nodes}-{i}.log")
            for i in range(layout.workers)
        ]
        conn = await asyncpg.connect(db)
        try:
            while True:  # until every partition is owned, by as many workers as were started
                statuses = await partition_status(js, "ingest")
                owners = {s.owner for s in statuses}
                if None not in owners and len(owners) == layout.workers:
                    break
                await asyncio.sleep(0.05)
            started = time.perf_counter()
            cpu_before = [cpu_seconds(w.pid) for w in workers]
            postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
            servers = [n.pid for n in cluster.nodes if n.pid is not None]
            pg_before = tree_cpu_seconds(postmaster)
            nats_before = sum(cpu_seconds(pid) for pid in servers)
            busy_before = machine_busy_seconds()
            for name in consumers:
                await js.resume_consumer(DETECTIONS_STREAM, name)
            while any(s.pending or s.ack_pending for s in await partition_status(js, "ingest")):
                if any(w.poll() is not None for w in workers):
                    raise RuntimeError(f"a worker exited; see {root}")
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            worker_cpu = sum(cpu_seconds(w.pid) for w in workers) - sum(cpu_before)
            machine_cpu = machine_busy_seconds() - busy_before
            pg_cpu = tree_cpu_seconds(postmaster) - pg_before
            nats_cpu = sum(cpu_seconds(pid) for pid in servers) - nats_before
            stored = await conn.fetchval("SELECT count(*) FROM utopia.detections")
            received = int(await conn.fetchval("SELECT coalesce(sum(received), 0) FROM utopia.consumer_progress"))
            table_bytes = await conn.fetchval(
                """SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                   WHERE inhparent = 'utopia.detections'::regclass"""
            )
            stream_bytes = (await js.stream_info(DETECTIONS_STREAM)).state.bytes
        finally:
            await conn.close()
            await nc.close()
            for worker in workers:
                worker.terminate()
            for worker in workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(60)
    return {
        "stored": stored,
        "received": received,
        "rate": received / elapsed,
        "rows_rate": stored / elapsed,
        "seconds": elapsed,
        # Events per CPU-second: of the ingest workers alone, and of the whole machine (workers,
        # nats-server, PostgreSQL).
        "worker_events_per_cpu_s": received / worker_cpu,
        "machine_cpu_cores": machine_cpu / elapsed,
        "worker_cpu_cores": worker_cpu / elapsed,
        # Disk: table + indexes per stored row; JetStream per event (one replica).
        "db_bytes_per_row": int(table_bytes) / stored,
        "stream_bytes_per_event": stream_bytes / received,
        "pg_cpu_cores": pg_cpu / elapsed,
        "nats_cpu_cores": nats_cpu / elapsed,
        "pg_events_per_cpu_s": received / pg_cpu,
        "nats_events_per_cpu_s": received / nats_cpu,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000, help="backlog per layout (default 1,000,000)")


async def main(args: argparse.Namespace) -> None:
    messages = site_messages(args.events)
    with tempfile.TemporaryDirectory(prefix="utopia-scale-") as tmp, PostgresServer(fsync=True) as pg:
        pg.create_database("scale_template")
        conn = await asyncpg.connect(pg.url("scale_template"))
        await migrations.run(conn, config.StorageSettings(flavour="plain"))
        await load_locations(conn, LOCATIONS)
        await conn.close()
        print(
            f"{'layout':<24}{'events':>11}{'events/s':>10}{'rows/s':>10}{'ratio':>7}"
            f"{'cores: workers':>15}{'postgres':>9}{'nats':>6}{'all':>6}"
            f"{'ev per cpu-s: worker':>22}{'postgres':>10}{'nats':>10}",
            flush=True,
        )
        baseline = None
        for layout in LAYOUTS:
            result = await one_layout(layout, pg, messages, Path(tmp))
            footprint = (
                f"disk: {result['db_bytes_per_row']:.0f} B per stored row (table + indexes), "
                f"{result['stream_bytes_per_event']:.0f} B per event in JetStream (per replica)"
            )
            baseline = baseline or result["rate"]
            print(
                f"{layout.name:<24}{result['received']:>11,}{result['rate']:>10,.0f}{result['rows_rate']:>10,.0f}"
                f"{result['rate'] / baseline:>7.2f}{result['worker_cpu_cores']:>15.2f}{result['pg_cpu_cores']:>9.2f}"
                f"{result['nats_cpu_cores']:>6.2f}{result['machine_cpu_cores']:>6.2f}"
                f"{result['worker_events_per_cpu_s']:>22,.0f}{result['pg_events_per_cpu_s']:>10,.0f}"
                f"{result['nats_events_per_cpu_s']:>10,.0f}",
                flush=True,
            )
        print(footprint, flush=True)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(cli)
    asyncio.run(main(cli.parse_args()))
