"""Storage benchmark: write path vs bare COPY, and top-items over 10 M rows spanning 7 days.

Starts its own PostgreSQL (fsync and synchronous_commit on), migrates the plain flavour and
reports medians:

1. Write path: `write_batch` of core batches of 5,000 rows (unique index, camera index, rollup
   increments, consumer progress, one transaction each), against a bare binary `COPY` of the
   same buffers into the same table, one transaction per batch, in the same run. Target >= 0.8x.
2. `top-items` (x=5, ranges with ragged edges across the 7 days) over N rows generated in SQL
   with generate_series, rollups built as maintenance would. Target p99 <= 100 ms.

Run: `.venv/bin/python benchmarks/storage_bench.py [--rows 10000000] [--write-rows 500000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The benchmark reuses the tests' PostgreSQL launcher, importable once the repo root is on the path.
from tests.support.postgres import PostgresServer

import utopia
from utopia.config import StorageSettings
from utopia.storage import Progress, fold_rollups, migrations, queries, write_batch
from utopia.storage.maintenance import ensure_partitions

ITEMS = ["person", "car", "bicycle", "bus", "truck", "motorbike", "dog", "cat", "van", "scooter"]
ITEMS += ["pram", "wheelchair", "horse", "tram", "taxi"]
LOCATIONS, CAMERAS_PER_LOCATION, BATCH = 20, 5, 5000


def make_batches(rows: int, rate_per_s: float) -> list[utopia.Batch]:
    """Core batches of BATCH rows, timestamps advancing at `rate_per_s` from now (like live traffic)."""
    rng = random.Random(1)
    core = utopia.Core()
    core.set_locations(list(range(1, LOCATIONS + 1)), [f"Location {i}" for i in range(1, LOCATIONS + 1)])
    t0 = int(time.time() * 1000)
    batches = []
    for b in range(rows // BATCH):
        per_loc: dict[int, list[dict[str, Any]]] = {}
        for i in range(b * BATCH, (b + 1) * BATCH):
            loc = rng.randrange(1, LOCATIONS + 1)
            per_loc.setdefault(loc, []).append(
                {
                    "geographical_location_oid": loc,
                    "video_camera_oid": loc * 100 + rng.randrange(CAMERAS_PER_LOCATION),
                    "detection_oid": i + 1,
                    "item_name": ITEMS[min(int(rng.expovariate(0.35)), len(ITEMS) - 1)],
                    "timestamp_detected": t0 + int(i * 1000 / rate_per_s),
                }
            )
        payloads = [json.dumps(v).encode() for v in per_loc.values()]
        batch = core.process(payloads, [f"utopia.detections.{k}" for k in per_loc], [None] * len(payloads))
        core.commit(batch.token)
        batches.append(batch)
    return batches


async def reset(conn: Any) -> None:
    await conn.execute(
        "TRUNCATE utopia.detections, utopia.rollup_pending, utopia.rollup_minute, utopia.rollup_hour, "
        "utopia.rollup_item_minute, utopia.rollup_item_hour, utopia.rollup_item_day, utopia.consumer_progress"
    )
    await conn.execute("CHECKPOINT")


async def run_write_path(conn: Any, batches: list[utopia.Batch], fold_every: int) -> float:
    start = time.perf_counter()
    for seq, batch in enumerate(batches, 1):
        await write_batch(conn, batch, Progress(consumer="bench", stream_seq=seq), flavour="plain")
        if fold_every and seq % fold_every == 0:
            await fold_rollups(conn)
    if fold_every:
        await fold_rollups(conn)
    return sum(b.accepted for b in batches) / (time.perf_counter() - start)


async def run_bare_copy(conn: Any, batches: list[utopia.Batch]) -> float:
    start = time.perf_counter()
    for batch in batches:
        async with conn.transaction():
            await conn.copy_to_table(
                "detections",
                schema_name="utopia",
                source=memoryview(batch.copy_data),
                format="binary",
                columns=utopia.COPY_COLUMNS,
            )
    return sum(b.accepted for b in batches) / (time.perf_counter() - start)


async def bench_writes(conn: Any, rows: int, repeats: int) -> None:
    batches = make_batches(rows, rate_per_s=100_000)
    results: dict[str, list[float]] = {"write_batch": [], "write_batch + fold every 20 batches": [], "bare COPY": []}
    await reset(conn)
    await run_write_path(conn, batches[:10], fold_every=0)  # warm-up: prepared statements, caches
    for _ in range(repeats):
        for name, rates in results.items():
            await reset(conn)
            if name == "bare COPY":
                rate = await run_bare_copy(conn, batches)
            else:
                rate = await run_write_path(conn, batches, fold_every=20 if "fold" in name else 0)
            rates.append(rate)
    bare = statistics.median(results["bare COPY"])
    print(f"\nwrite path: {len(batches)} batches x {BATCH} rows, median of {repeats}")
    for name, rates in results.items():
        median = statistics.median(rates)
        print(f"  {name:40s} {median:>10,.0f} rows/s   {median / bare:5.2f}x bare COPY")


GENERATE_SQL = """
INSERT INTO utopia.detections
    (geographical_location_oid, video_camera_oid, detection_oid, item_name, timestamp_detected,
     geographical_location, ingested_at)
SELECT loc, loc * 100 + (h >> 8) % $3, i,
       ($4::text[])[1 + least(floor(-ln(1 - ((h >> 16) % 10000) / 10000.0) / 0.35)::int, $8::int - 1)],
       $1::timestamptz + (i - 1) * $2::interval, 'Location ' || loc, now()
FROM (SELECT i, abs(hashint8(i))::int8 AS h, 1 + abs(hashint8(i)) % $5 AS loc
      FROM generate_series($6::int8, $7::int8) AS i) AS s
"""


async def bench_top_items(conn: Any, rows: int, runs: int) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=7)
    settings = StorageSettings(retention_days=30, partitions_ahead=1)
    day = start
    while day <= end:
        await ensure_partitions(conn, settings, day)
        day += timedelta(days=1)
    await reset(conn)
    step = timedelta(days=7) / rows
    t = time.perf_counter()
    chunk = 1_000_000
    for first in range(1, rows + 1, chunk):
        last = min(first + chunk - 1, rows)
        await conn.execute(GENERATE_SQL, start, step, CAMERAS_PER_LOCATION, ITEMS, LOCATIONS, first, last, len(ITEMS))
    print(f"\ntop-items: generated {rows:,} rows over 7 days in {time.perf_counter() - t:.0f} s", end="")
    t = time.perf_counter()
    for table, source, bucket, keys in (
        ("rollup_minute", "detections", "date_trunc('minute', timestamp_detected, 'UTC')", "video_camera_oid, "),
        ("rollup_hour", "rollup_minute", "date_trunc('hour', bucket, 'UTC')", "video_camera_oid, "),
        ("rollup_item_minute", "rollup_minute", "bucket", ""),
        ("rollup_item_hour", "rollup_item_minute", "date_trunc('hour', bucket, 'UTC')", ""),
        ("rollup_item_day", "rollup_item_hour", "date_trunc('day', bucket, 'UTC')", ""),
    ):
        count = "count(*)" if source == "detections" else "sum(n)"
        await conn.execute(
            f"INSERT INTO utopia.{table} SELECT {bucket}, geographical_location_oid, {keys}item_name, {count} "
            f"FROM utopia.{source} GROUP BY {bucket}, geographical_location_oid, {keys}item_name"
        )
    await conn.execute("VACUUM ANALYZE")
    minute_rows = await conn.fetchval("SELECT count(*) FROM utopia.rollup_minute")
    hour_rows = await conn.fetchval("SELECT count(*) FROM utopia.rollup_hour")
    print(f"; rollups {minute_rows:,} minute / {hour_rows:,} hour rows in {time.perf_counter() - t:.0f} s")
    rng = random.Random(2)
    for label, location in (("all locations", None), ("one location", 7)):
        timings = []
        for _ in range(runs):
            lo = start + timedelta(seconds=rng.uniform(0, 3600))
            hi = end - timedelta(seconds=rng.uniform(0, 3600))
            t = time.perf_counter()
            result = await queries.top_items(conn, 5, lo, hi, location=location)
            timings.append((time.perf_counter() - t) * 1000)
        timings.sort()
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        print(
            f"  top_items x=5 over ~7 days, {label:14s} median {statistics.median(timings):6.1f} ms  "
            f"p99 {p99:6.1f} ms  ({runs} runs, {len(result)} rows)"
        )


async def main(args: argparse.Namespace) -> None:
    with PostgresServer(fsync=True, settings={"shared_buffers": "1GB", "max_wal_size": "8GB"}) as server:
        conn = await asyncpg.connect(server.url())
        try:
            await migrations.run(conn, StorageSettings(flavour="plain"))
            if args.write_rows:
                await bench_writes(conn, args.write_rows, args.repeats)
            if args.rows:
                await bench_top_items(conn, args.rows, args.runs)
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-rows", type=int, default=500_000, help="rows per write-path run (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows for the top-items part (0: skip)")
    parser.add_argument("--runs", type=int, default=200, help="top-items queries per variant")
    asyncio.run(main(parser.parse_args()))
