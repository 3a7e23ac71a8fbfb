"""Ingest end to end against a real nats-server and PostgreSQL: exactly the unique valid events."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import nats
import pytest

from tests.ingest.conftest import LOCATIONS, provisioned
from tests.ingest.harness import expected, make_settings, publish, stored_rows, wait_until_consumed, worker_task
from tests.ingest.traffic import messy_stream
from tests.support.nats_server import NatsServer, read_stream
from utopia_edge.contract import DLQ_STREAM, HEADER_REJECT_REASON, HEADER_SOURCE_SEQ, HEADER_SOURCE_SUBJECT

pytestmark = pytest.mark.timeout(120)


async def test_stores_exactly_the_unique_valid_events_and_dead_letters_the_rest(
    nats_server: NatsServer, db_url: str
) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url))
    messages = messy_stream()
    want = expected(messages, LOCATIONS)
    assert want.duplicates > 50
    assert want.rejected > 200
    assert want.unmatched > 0

    async with worker_task(settings) as worker:
        await publish(nats_server.url, messages)
        await wait_until_consumed(nats_server.url)
        events = {s.labels["outcome"]: s.value for s in _samples(worker, "utopia_ingest_events_total")}

    assert await stored_rows(db_url) == sorted(want.rows, key=lambda r: r.detection_oid)

    dead = await read_stream(nats_server.url, DLQ_STREAM)
    assert len(dead) == want.rejected
    reasons = sorted(headers[HEADER_REJECT_REASON].split(":")[0] for _, headers, _ in dead)
    assert reasons == sorted(r.field for r in want.rejects)
    for _, headers, _ in dead:
        assert headers[HEADER_SOURCE_SUBJECT].startswith("utopia.detections.")
        assert int(headers[HEADER_SOURCE_SEQ]) >= 1

    assert events == {
        "received": want.received,
        "accepted": want.accepted,
        "duplicate": want.duplicates,
        "rejected": want.rejected,
        "unmatched": want.unmatched,
        "stored": want.accepted,
        "conflict": 0,
    }
    conn = await asyncpg.connect(db_url)
    try:
        progress = await conn.fetchrow("SELECT * FROM utopia.consumer_progress WHERE consumer = 'ingest-0'")
    finally:
        await conn.close()
    assert progress["stream_seq"] == len(messages)
    assert (progress["received"], progress["stored"], progress["rejected"]) == (
        want.received,
        want.accepted,
        want.rejected,
    )


async def test_live_notification_comes_after_its_rows_are_visible(nats_server: NatsServer, db_url: str) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url))
    nc = await nats.connect(nats_server.url)
    conn = await asyncpg.connect(db_url)
    checked: list[int] = []
    missing: list[int] = []

    async def on_detections(msg: nats.aio.msg.Msg) -> None:
        ids = [e["detection_oid"] for e in json.loads(msg.data)]
        found = await conn.fetchval("SELECT count(*) FROM utopia.detections WHERE detection_oid = ANY($1::int8[])", ids)
        checked.extend(ids)
        if found != len(ids):
            missing.extend(ids)

    sub = await nc.subscribe("utopia.live.detections.>", cb=on_detections)
    try:
        async with worker_task(settings):
            messages = messy_stream(seed=5)
            await publish(nats_server.url, messages)
            await wait_until_consumed(nats_server.url)
            await asyncio.sleep(0.5)
        assert len(checked) == expected(messages, LOCATIONS).accepted
        assert missing == []
    finally:
        await sub.unsubscribe()
        await nc.close()
        await conn.close()


def _samples(worker: object, name: str) -> list[object]:
    registry = worker.metrics.registry  # type: ignore[attr-defined]
    return [s for metric in registry.collect() for s in metric.samples if s.name == name]
