"""Driving ingest in tests: settings for private servers, publishing, waiting, reading results."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import msgpack
import nats
import nats.errors

from utopia import config
from utopia.copy_format import Row
from utopia.ingest.status import partition_status
from utopia.ingest.worker import Worker
from utopia.reference import ReferenceCore

Message = tuple[str, bytes, dict[str, str]]


def make_settings(nats_url: str, db_url: str, **flat: object) -> config.Settings:
    """Settings for the test's own servers; fast redelivery so crash tests do not wait long."""
    overrides: dict[str, object] = {
        "nats.url": nats_url,
        "database.url": db_url,
        "ingest.ack_wait_s": 3.0,
        "ingest.fetch_timeout_s": 0.2,
        "ingest.metrics_port": 0,
        "ingest.retry_max_s": 1.0,
    }
    overrides.update(flat)
    return config.load(env={}, overrides=overrides)


def settings_env(settings: config.Settings) -> dict[str, str]:
    """The same settings as environment variables, for a worker in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UTOPIA_")}
    env.update(
        {
            "UTOPIA_NATS_URL": settings.nats.url,
            "UTOPIA_DATABASE_URL": settings.database.url,
            "UTOPIA_INGEST_ACK_WAIT_S": str(settings.ingest.ack_wait_s),
            "UTOPIA_INGEST_FETCH_TIMEOUT_S": str(settings.ingest.fetch_timeout_s),
            "UTOPIA_INGEST_METRICS_PORT": "0",
            "UTOPIA_INGEST_RETRY_MAX_S": str(settings.ingest.retry_max_s),
            "UTOPIA_INGEST_LEASE_S": str(settings.ingest.lease_s),
            "UTOPIA_STREAMS_PARTITIONS": str(settings.streams.partitions),
            "UTOPIA_STREAMS_REPLICAS": str(settings.streams.replicas),
            "UTOPIA_LOG_LEVEL": "info",
        }
    )
    if settings.ingest.worker_id:
        env["UTOPIA_INGEST_WORKER_ID"] = settings.ingest.worker_id
    return env


async def publish(url: str, messages: Sequence[Message], *, in_flight: int = 64) -> None:
    """Publishes to JetStream, waiting for every acknowledgement."""
    nc = await nats.connect(servers=url.split(","))
    try:
        js = nc.jetstream()
        for start in range(0, len(messages), in_flight):
            chunk = messages[start : start + in_flight]
            await asyncio.gather(*(js.publish(s, p, headers=h or None) for s, p, h in chunk))
    finally:
        await nc.close()


async def wait_until_consumed(url: str, consumer: str = "ingest", *, within_s: float = 60.0) -> None:
    """Until every partition consumer has nothing pending and nothing awaiting acknowledgement."""
    nc = await nats.connect(servers=url.split(","))
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + within_s
        while True:
            statuses = await partition_status(js, consumer)
            assert statuses, f"no consumers {consumer}-<partition> on the stream"
            if all(s.pending == 0 and s.ack_pending == 0 for s in statuses):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumers not done: {statuses}")
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


def copies_by_id(messages: Sequence[Message], locations: dict[int, str]) -> dict[int, set[Row]]:
    """Every valid copy of every detection; a stored row must be one of them."""
    copies: dict[int, set[Row]] = defaultdict(set)
    for _, payload, _ in messages:
        for e in msgpack.unpackb(payload):
            loc = e["geographical_location_oid"]
            copies[e["detection_oid"]].add(
                Row(
                    loc,
                    e["video_camera_oid"],
                    e["detection_oid"],
                    e["item_name"],
                    e["timestamp_detected"],
                    locations.get(loc),
                )
            )
    return copies


def assert_exactly_once(rows: list[Row], copies: dict[int, set[Row]]) -> None:
    ids = [r.detection_oid for r in rows]
    assert len(ids) == len(set(ids)), "a detection was stored twice"
    assert set(ids) == set(copies), f"{len(set(copies) - set(ids))} detections lost"
    wrong = [r for r in rows if r not in copies[r.detection_oid]]
    assert wrong == [], f"rows that match no published copy: {wrong[:3]}"


async def publish_paced(url: str, messages: list[Message], seconds: float) -> None:
    """Publishes over `seconds`, riding out server restarts: each message has its own
    Nats-Msg-Id, so a retry after a lost acknowledgement is dropped by the duplicate window."""
    nc = await nats.connect(servers=url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    pause = seconds / len(messages)
    try:
        for index, (subject, payload, headers) in enumerate(messages):
            while True:
                try:
                    await js.publish(subject, payload, headers={**headers, "Nats-Msg-Id": f"test-{index}"}, timeout=2)
                    break
                except (nats.errors.Error, TimeoutError):
                    await asyncio.sleep(0.2)
            await asyncio.sleep(pause)
    finally:
        await nc.close()


async def wait_for_owners(
    url: str, workers: set[str], *, consumer: str = "ingest", within_s: float = 60.0
) -> dict[int, str | None]:
    """Until the partitions are shared out evenly among `workers`; partition -> owner. Rides out a
    NATS node that is down (the url may list several servers)."""
    deadline = time.monotonic() + within_s
    owners: dict[int, str | None] = {}
    while True:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            nc = await nats.connect(servers=url.split(","), max_reconnect_attempts=2)
            try:
                owners = {s.partition: s.owner for s in await partition_status(nc.jetstream(), consumer)}
            finally:
                await nc.close()
        held = list(owners.values())
        counts = [held.count(w) for w in workers]
        if owners and set(held) == workers and max(counts) - min(counts) <= 1:
            return owners
        assert time.monotonic() < deadline, f"partitions not shared out among {workers}: {owners}"
        await asyncio.sleep(0.2)


async def stored_rows(db_url: str) -> list[Row]:
    conn = await asyncpg.connect(db_url)
    try:
        records = await conn.fetch(
            """SELECT geographical_location_oid, video_camera_oid, detection_oid, item_name,
                      (extract(epoch FROM timestamp_detected) * 1000)::int8 AS ts, geographical_location
               FROM utopia.detections ORDER BY detection_oid"""
        )
    finally:
        await conn.close()
    return [Row(*r) for r in records]


def expected(messages: Sequence[Message], locations: dict[int, str]) -> Any:
    """What must end up stored and dead-lettered: the reference core over the stream, in order."""
    ref = ReferenceCore()
    ref.set_locations(list(locations), list(locations.values()))
    return ref.process(
        [m[1] for m in messages],
        [m[0] for m in messages],
        [m[2].get("Content-Type") for m in messages],
    )


@contextlib.asynccontextmanager
async def worker_task(settings: config.Settings) -> AsyncIterator[Worker]:
    """An ingest worker in this event loop, stopped (gracefully) on exit."""
    stop = asyncio.Event()
    worker = Worker(settings)
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


class IngestProcess:
    """`utopia ingest` as a child process, for kill -9; its stderr goes to a file for diagnosis."""

    def __init__(self, settings: config.Settings, log_path: str) -> None:
        self.env = settings_env(settings)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.run_offset = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "utopia.cli", "ingest"]
        with open(self.log_path, "ab") as log:
            # Where this run's log starts: an earlier run killed before it was ready logged nothing.
            self.run_offset = log.tell()
            self.proc = subprocess.Popen(command, env=self.env, stderr=log, stdout=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait_ready(self, within_s: float = 30.0) -> None:
        """Until this run has logged that it is consuming (its signal handlers are in place)."""
        assert self.proc is not None
        deadline = time.monotonic() + within_s
        while '"msg": "ingesting"' not in self.stderr(tail=None)[self.run_offset :]:
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "ingest did not start"
            time.sleep(0.05)

    def terminate(self) -> int:
        assert self.proc is not None
        self.wait_ready()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def stderr(self, tail: int | None = 3000) -> str:
        with open(self.log_path, "rb") as log:
            text = log.read().decode(errors="replace")
        return text if tail is None else text[-tail:]
