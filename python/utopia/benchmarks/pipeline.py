"""End-to-end ingest: publisher process -> JetStream -> ingest worker -> PostgreSQL, on this machine.

Starts its own nats-server and PostgreSQL (fsync and synchronous_commit on, as in production),
migrates, provisions, then for each target rate (10k, 100k events/s and as fast as possible) runs
a publisher in its own process sending MessagePack messages of 500 events with 5 % duplicates,
and an ingest worker in this process. Reports the sustained ingest rate and publish->commit
latency (p50/p99 over every message). The same runs are repeated with the pure-Python reference
in place of the Rust core, and the accepted rows of one run are loaded with a bare COPY into the
same table (unique index included) for the ceiling.

    utopia bench [--seconds 10] [--rates 10000,100000,max]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import time
from typing import Any

import asyncpg
import nats

from utopia import COPY_COLUMNS, Core, config, copy_format
from utopia.benchmarks.core import MSGPACK, make_batches, rss_bytes
from utopia.copy_format import Row
from utopia.embedded.nats import NatsServer
from utopia.embedded.postgres import PostgresServer
from utopia.ingest.provisioning import provision
from utopia.ingest.status import backlog
from utopia.ingest.worker import Worker
from utopia.reference import ReferenceCore
from utopia.storage import migrations
from utopia.storage.locations import load_locations

LOCATIONS = [(oid, f"Location {oid}") for oid in range(1, 31)]


def publisher(url: str, rate: float | None, seconds: float, first_id: int, ready: Any) -> None:
    """Runs in its own process: pre-encoded messages, paced to `rate` (None: as fast as it can)."""
    events = int((rate or 400_000) * seconds)
    batches = make_batches(events, MSGPACK, seed=first_id % 97, first_id=first_id)
    messages = [(s, p) for payloads, subjects, _ in batches for p, s in zip(payloads, subjects, strict=True)]

    async def run() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        ready.set()
        started = time.perf_counter()
        pending: set[asyncio.Future[Any]] = set()
        for index, (subject, payload) in enumerate(messages):
            if rate is not None:
                due = started + index * 500 / rate
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
            pending.add(asyncio.ensure_future(js.publish(subject, payload, headers={"Content-Type": MSGPACK})))
            if len(pending) >= 256:
                _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)
        await nc.close()

    asyncio.run(run())


class ReferenceAdapter(ReferenceCore):
    """The reference with the few extras the ingest pipeline reads from a `utopia.Batch`."""

    def process(
        self, payloads: Any, subjects: Any, content_types: Any, *, now_ms: int | None = None, live: bool = False
    ) -> Any:
        batch = super().process(payloads, subjects, content_types, now_ms=now_ms)
        columns = batch.counts_columns()
        batch.counts = lambda: columns  # type: ignore[assignment]
        batch.live = list  # type: ignore[attr-defined]
        stamps = [r.timestamp_detected for r in batch.rows]
        batch.timestamp_range = lambda: (min(stamps), max(stamps)) if stamps else None  # type: ignore[attr-defined]
        return batch

    def stats(self) -> tuple[int, int, int, int, int]:
        return (len(self.marks), 0, 0, len(self.open), len(self.locations))


async def one_run(
    nats_server: NatsServer, pg: PostgresServer, name: str, rate: float | None, *, seconds: float, reference: bool
) -> dict[str, float]:
    db = pg.create_database(name, template="bench_template")
    settings = config.load(
        env={},
        overrides={"nats.url": nats_server.url, "database.url": db, "ingest.metrics_port": 0, "log_level": "warning"},
    )
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    with_seq = (await js.stream_info("DETECTIONS")).state.last_seq
    await nc.close()
    core_factory: Any = ReferenceAdapter if reference else Core
    worker = Worker(settings, core_factory=core_factory)
    latencies: list[float] = []
    worker.metrics.publish_to_commit_seconds.observe = latencies.append  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=publisher, args=(nats_server.url, rate, seconds, 1 + with_seq * 500, ready))
    proc.start()
    await asyncio.to_thread(ready.wait, 60)
    started = time.perf_counter()
    await asyncio.to_thread(proc.join)
    # Drain: until every published message is acknowledged.
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    while True:
        if task.done():
            task.result()  # the worker died: show why
            raise RuntimeError("the worker stopped before the stream was consumed")
        if await backlog(js, settings.ingest.consumer) == 0:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    await nc.close()
    stop.set()
    await task
    conn = await asyncpg.connect(db)
    stored = await conn.fetchval("SELECT count(*) FROM utopia.detections")
    await conn.close()
    received = sum(
        s.value
        for m in worker.metrics.registry.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("outcome") == "received"
    )
    latencies.sort()
    return {
        "events": received,
        "stored": stored,
        "rate": received / elapsed,
        "rows_rate": stored / elapsed,
        "rss_mib": rss_bytes() / 2**20,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "db": db,
    }


async def bare_copy(pg: PostgresServer, source_db: str) -> float:
    """Rows/s of a bare binary COPY of the stored rows into an empty copy of the table, in buffers of
    5,000 rows prepared beforehand (the same format the core hands the writer)."""
    target = pg.create_database("bench_copy", template="bench_template")
    src = await asyncpg.connect(source_db)
    records = await src.fetch(
        """SELECT geographical_location_oid, video_camera_oid, detection_oid, item_name,
                  (extract(epoch FROM timestamp_detected) * 1000)::int8, geographical_location
           FROM utopia.detections ORDER BY ingested_at"""
    )
    await src.close()
    rows = [Row(*r) for r in records]
    buffers = [copy_format.encode(rows[i : i + 5000]) for i in range(0, len(rows), 5000)]
    dst = await asyncpg.connect(target)
    started = time.perf_counter()
    for buffer in buffers:
        await dst.copy_to_table(
            "detections", schema_name="utopia", source=memoryview(buffer), format="binary", columns=COPY_COLUMNS
        )
    elapsed = time.perf_counter() - started
    await dst.close()
    return len(rows) / elapsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per run (default 10)")
    parser.add_argument("--rates", default="10000,100000,max", help="target rates in events/s; max: flat out")


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    rates = [None if r == "max" else float(r) for r in args.rates.split(",")]
    with NatsServer() as nats_server, PostgresServer(fsync=True) as pg:
        pg.create_database("bench_template")
        conn = await asyncpg.connect(pg.url("bench_template"))
        await migrations.run(conn, config.StorageSettings(flavour="plain"))
        await load_locations(conn, LOCATIONS)
        await conn.close()
        await provision(config.load(env={}, overrides={"nats.url": nats_server.url}))
        print(
            f"{'core':<10}{'target':>10}{'events':>11}{'ingest ev/s':>13}{'p50 ms':>9}{'p99 ms':>9}{'RSS MiB':>9}",
            flush=True,
        )
        results: dict[tuple[bool, float | None], dict[str, float]] = {}
        run = 0
        for reference in (False, True):
            for rate in rates:
                run += 1
                # The reference is far slower: give its flat-out run less to chew on.
                seconds = args.seconds / 4 if reference and rate is None else args.seconds
                result = await one_run(nats_server, pg, f"bench_{run}", rate, seconds=seconds, reference=reference)
                results[(reference, rate)] = result
                label = "reference" if reference else "rust"
                target = "max" if rate is None else f"{rate / 1000:.0f}k"
                print(
                    f"{label:<10}{target:>10}{result['events']:>11,.0f}{result['rate']:>13,.0f}"
                    f"{result['p50_ms']:>9.1f}{result['p99_ms']:>9.1f}{result['rss_mib']:>9.0f}",
                    flush=True,
                )
        flat_out = results.get((False, None))
        source = flat_out or max((r for (ref, _), r in results.items() if not ref), key=lambda r: r["rate"])
        copy_rate = await bare_copy(pg, str(source["db"]))
        line = f"bare COPY of the same rows into the same table (unique index): {copy_rate:,.0f} rows/s"
        if flat_out is not None:
            ratio = flat_out["rows_rate"] / copy_rate
            line += f"; Rust flat out stored {flat_out['rows_rate']:,.0f} rows/s = {ratio:.2f}x bare COPY"
        print(line, flush=True)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(cli)
    asyncio.run(main(cli.parse_args()))
