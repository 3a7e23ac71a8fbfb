"""Faults really injected (kill -9 of ingest, PostgreSQL stopped, nats-server restarted) while a
stream flows; at the end every event is counted: each unique detection stored exactly once."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import pytest

from tests.ingest.conftest import LOCATIONS, provisioned
from tests.ingest.harness import (
    IngestProcess,
    assert_exactly_once,
    copies_by_id,
    make_settings,
    publish_paced,
    stored_rows,
    wait_until_consumed,
    worker_task,
)
from tests.ingest.traffic import clean_stream
from tests.support.nats_server import NatsServer, free_port
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_kill_9_of_ingest_at_random_moments_loses_and_doubles_nothing(
    nats_server: NatsServer, db_url: str, tmp_path: Path
) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url))
    messages = clean_stream(400, 500, seed=11)  # 200,000 events, 5 % re-sent
    copies = copies_by_id(messages, LOCATIONS)
    publisher = asyncio.create_task(publish_paced(nats_server.url, messages, seconds=20))
    rng = random.Random(7)
    worker = IngestProcess(settings, str(tmp_path / "ingest.log"))
    kills = 0
    while not publisher.done() or kills < 6:
        worker.start()
        await asyncio.sleep(rng.uniform(0.8, 3.5))
        assert worker.proc is not None
        assert worker.proc.poll() is None, worker.stderr()
        worker.kill()
        kills += 1
    await publisher
    worker.start()
    await wait_until_consumed(nats_server.url, within_s=120)
    assert worker.terminate() == 0, worker.stderr()
    assert kills >= 6
    assert_exactly_once(await stored_rows(db_url), copies)


async def test_postgres_down_for_10s_mid_stream(
    nats_server: NatsServer, db_url: str, pg_server: PostgresServer
) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url))
    messages = clean_stream(120, 500, seed=12)
    copies = copies_by_id(messages, LOCATIONS)
    async with worker_task(settings) as worker:
        publisher = asyncio.create_task(publish_paced(nats_server.url, messages, seconds=12))
        await asyncio.sleep(3)
        await asyncio.to_thread(pg_server.stop, "immediate")
        await asyncio.sleep(10)
        await asyncio.to_thread(pg_server.start)
        await publisher
        await wait_until_consumed(nats_server.url, within_s=120)
        retries = worker.metrics.write_retries._value.get()
    assert retries > 0, "the outage never reached the writer"
    assert_exactly_once(await stored_rows(db_url), copies)


async def test_nats_server_restart_mid_stream(nats_server: NatsServer, db_url: str) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url))
    messages = clean_stream(120, 500, seed=13)
    copies = copies_by_id(messages, LOCATIONS)
    async with worker_task(settings):
        publisher = asyncio.create_task(publish_paced(nats_server.url, messages, seconds=10))
        await asyncio.sleep(3)
        await asyncio.to_thread(nats_server.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(nats_server.start)
        await publisher
        await wait_until_consumed(nats_server.url, within_s=120)
    assert_exactly_once(await stored_rows(db_url), copies)


def test_sigterm_while_waiting_for_nats_stops_at_once(db_url: str, tmp_path: Path) -> None:
    # NATS is not there: the worker waits for it, and SIGTERM must end that wait, not hang.
    settings = make_settings(f"nats://127.0.0.1:{free_port()}", db_url)
    worker = IngestProcess(settings, str(tmp_path / "ingest.log"))
    worker.start()
    time.sleep(2)
    assert worker.proc is not None
    assert worker.proc.poll() is None, worker.stderr()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=10) == 0, worker.stderr()
