"""API benchmark: `/top-items` over HTTP with N stored rows, and SSE fan-out latency to many clients.

Starts its own PostgreSQL and NATS, runs `utopia api` as a child process and measures from this one:
1. `GET /api/v1/top-items?x=5` over ~7 days of N rows (generated as in storage_bench.py, rollups
   built): median and p99 of sequential requests. Target p99 <= 50 ms at 10 M rows.
2. SSE fan-out: C clients on `/api/v1/stream` while `utopia.live.counts` notifications arrive as
   ingest would send them at R events/s (batches of 500 events); latency from the notification's
   `committed_at_ms` to its arrival at each client: median, p99, max. Target p99 <= 250 ms.
Run: `.venv/bin/python benchmarks/api_bench.py [--rows 10000000] [--clients 500] [--rate 10000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The benchmark reuses the tests' server launchers and the storage benchmark's data generator.
from storage_bench import bench_top_items
from tests.support.nats_server import NatsServer, free_port
from tests.support.postgres import PostgresServer

from utopia.config import StorageSettings
from utopia.storage import migrations
from utopia_server.tokens import create_token

BATCH = 500


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def bench_top_items_http(base: str, token: str, runs: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        for label, extra in (("all locations", {}), ("one location", {"location": 7})):
            timings = []
            for _ in range(runs):
                t = time.perf_counter()
                response = await http.get("/api/v1/top-items", params={"x": 5, "from": _ago(7 * 86400), **extra})
                timings.append((time.perf_counter() - t) * 1000)
                response.raise_for_status()
            print(
                f"  GET /top-items x=5, 7 days, {label:14s} median {statistics.median(timings):6.1f} ms  "
                f"p99 {pct(timings, 0.99):6.1f} ms  ({runs} requests, {len(response.json())} rows)"
            )


def _ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds + 3600))


async def _client(base: str, token: str, delays: list[float], ready: asyncio.Event, counter: list[int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=None) as http,
        http.stream("GET", f"{base}/api/v1/stream", headers=headers) as r,
    ):
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        name = ""
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:") and name == "counts":
                delays.append(time.time() * 1000 - json.loads(line[5:])["committed_at_ms"])


async def bench_fanout(base: str, nats_url: str, token: str, *, clients: int, rate: int, seconds: float) -> None:
    delays: list[float] = []
    ready = asyncio.Event()
    counter = [0, clients]
    tasks = [asyncio.create_task(_client(base, token, delays, ready, counter)) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 60)
    nc = await nats.connect(nats_url)
    per_s = max(1, rate // BATCH)
    counts: dict[str, list[Any]] = {"minute_ms": [0] * 20, "geographical_location_oid": list(range(1, 21))}
    counts |= {"video_camera_oid": [1] * 20, "item_name": ["person"] * 20, "count": [BATCH // 20] * 20}
    sent = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        body: dict[str, Any] = {"committed_at_ms": int(time.time() * 1000), "received": BATCH, "stored": BATCH}
        body |= {"accepted": BATCH, "duplicates": 0, "rejected": 0, "unmatched": 0, "counts": counts}
        await nc.publish("utopia.live.counts", json.dumps(body).encode())
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / per_s - time.perf_counter()))
    await nc.flush()
    await asyncio.sleep(2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await nc.close()
    expected = sent * clients
    print(
        f"  SSE fan-out: {clients} clients, {per_s} notifications/s (= {per_s * BATCH:,} events/s), {seconds:.0f} s: "
        f"delivered {len(delays):,}/{expected:,}; commit-to-client median {statistics.median(delays):.1f} ms, "
        f"p99 {pct(delays, 0.99):.1f} ms, max {max(delays):.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    pg_settings = {"shared_buffers": "1GB", "max_wal_size": "8GB"}
    with (
        PostgresServer(fsync=True, settings=pg_settings) as pg,
        tempfile.TemporaryDirectory() as tmp,
        NatsServer(Path(tmp) / "nats") as nats_server,
    ):
        conn = await asyncpg.connect(pg.url())
        try:
            await migrations.run(conn, StorageSettings(flavour="plain"))
            token = await create_token(conn, "viewer", "bench")
            if args.rows:
                await bench_top_items(conn, args.rows, runs=1)
        finally:
            await conn.close()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("UTOPIA_")}
        env |= {"UTOPIA_NATS_URL": nats_server.url, "UTOPIA_DATABASE_URL": pg.url(), "UTOPIA_API_PORT": str(port)}
        env |= {"UTOPIA_API_STREAM_CLIENT_QUEUE": "1000", "UTOPIA_LOG_LEVEL": "warning"}
        api = subprocess.Popen([sys.executable, "-m", "utopia.cli", "api"], env=env)  # noqa: ASYNC220 - long-lived child
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait(base)
            print("\nAPI (utopia api, one process):")
            if args.rows:
                await bench_top_items_http(base, token, args.runs)
            if args.clients:
                await bench_fanout(
                    base, nats_server.url, token, clients=args.clients, rate=args.rate, seconds=args.seconds
                )
        finally:
            api.terminate()
            api.wait(timeout=30)


async def _wait(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                if (await http.get(base + "/api/v1/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the API did not become healthy")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="stored rows for /top-items (0: skip)")
    parser.add_argument("--runs", type=int, default=200, help="/top-items requests per variant")
    parser.add_argument("--clients", type=int, default=500, help="SSE clients (0: skip)")
    parser.add_argument("--rate", type=int, default=10_000, help="events/s announced on the live feed")
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))
