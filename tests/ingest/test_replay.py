"""`utopia replay`: reprocessing a range twice changes nothing; into an empty database it restores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.ingest.conftest import LOCATIONS, provisioned
from tests.ingest.harness import expected, make_settings, publish, stored_rows, wait_until_consumed, worker_task
from tests.ingest.traffic import messy_stream
from tests.support.nats_server import NatsServer
from tests.support.postgres import PostgresServer
from utopia.ingest.replay import replay
from utopia.storage import queries

pytestmark = pytest.mark.timeout(180)


async def rollup_view(db_url: str) -> list[object]:
    conn = await asyncpg.connect(db_url)
    try:
        start = datetime(2025, 11, 1, tzinfo=UTC)
        return list(await queries.timeseries(conn, "minute", start, start + timedelta(days=60)))
    finally:
        await conn.close()


async def test_replaying_a_range_twice_changes_nothing(nats_server: NatsServer, db_url: str) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url))
    messages = messy_stream(seed=21)
    began = datetime.now(UTC) - timedelta(seconds=1)
    async with worker_task(settings):
        await publish(nats_server.url, messages)
        await wait_until_consumed(nats_server.url)
    rows, rollups = await stored_rows(db_url), await rollup_view(db_url)
    assert rows
    for _ in range(2):
        progress = await replay(settings, began, None)
        assert progress.messages == len(messages)
        assert progress.stored == 0
        assert await stored_rows(db_url) == rows
        assert await rollup_view(db_url) == rollups


async def test_replay_into_an_empty_database_restores_every_event(
    nats_server: NatsServer, db_url: str, pg_server: PostgresServer
) -> None:
    await provisioned(make_settings(nats_server.url, db_url))
    messages = messy_stream(seed=22)
    await publish(nats_server.url, messages)
    fresh = pg_server.create_database("ingest_replay_target", template="ingest_template")
    try:
        target = make_settings(nats_server.url, fresh)
        progress = await replay(target, datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC))
        want = expected(messages, LOCATIONS)
        assert progress.stored == want.accepted
        assert progress.rejected == want.rejected
        assert await stored_rows(fresh) == sorted(want.rows, key=lambda r: r.detection_oid)
    finally:
        pg_server.drop_database("ingest_replay_target")
