"""The TimescaleDB flavour, run against PGlite with TimescaleDB through the wire bridge.

Correctness only (WASM, one session): migrations, write path and queries. Policies are checked as
registered jobs; TimescaleDB's background workers do not run here, so tests refresh the continuous
aggregates by hand (`refresh_rollups`), as a replay does. Late rows in already materialised buckets
show once refreshed (in production: by the refresh policy within `storage.late_window_hours`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from tests.storage import data
from tests.storage.checks import check_cameras, check_counts, check_pagination, load_dataset, random_ranges, settle
from tests.storage.timescale import TimescaleBridge
from utopia.config import StorageSettings
from utopia.storage import Progress, migrations, write_batch

pytestmark = [pytest.mark.timescaledb, pytest.mark.timeout(300)]


@pytest.fixture(scope="session")
def bridge() -> Iterator[TimescaleBridge]:
    server = TimescaleBridge()
    yield server
    server.close()


@pytest.fixture
async def ts_empty(bridge: TimescaleBridge) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(bridge.url)
    await conn.execute("DROP SCHEMA IF EXISTS utopia CASCADE")
    yield conn
    await conn.close()


@pytest.fixture
async def ts_conn(ts_empty: Any) -> Any:
    await migrations.run(ts_empty, StorageSettings(flavour="timescaledb"))
    return ts_empty


async def test_migrate_twice(ts_empty: Any) -> None:
    first = await migrations.run(ts_empty, StorageSettings())
    assert first.flavour == "timescaledb"
    assert first.applied == ["001_base.sql", "002_detections.sql", "003_api_tokens.sql", "004_partition_owners.sql"]
    second = await migrations.run(ts_empty, StorageSettings(retention_days=40))
    assert (second.applied, second.already_applied) == ([], 4)
    hypertables = await ts_empty.fetch(
        "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = 'utopia'"
    )
    assert [(r[0], r[1]) for r in hypertables] == [("detections", True)]
    caggs = await ts_empty.fetch(
        "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates "
        "WHERE view_schema = 'utopia' ORDER BY 1"
    )
    names = ["detections_hour", "detections_item_day", "detections_item_hour", "detections_item_minute"]
    assert [(r[0], r[1]) for r in caggs] == [(n, False) for n in [*names, "detections_minute"]]
    jobs = await ts_empty.fetch(
        "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs "
        "WHERE hypertable_schema IS NOT NULL"
    )
    kinds = Counter(r["proc_name"] for r in jobs)
    assert kinds["policy_refresh_continuous_aggregate"] == 5
    assert kinds["policy_compression"] + kinds.get("policy_columnstore", 0) >= 1
    assert kinds["policy_retention"] == 3  # raw rows and both minute aggregates; hour/day kept for good
    raw_retention = [
        r["config"] for r in jobs if r["proc_name"] == "policy_retention" and r["hypertable_name"] == "detections"
    ]
    assert "40 days" in raw_retention[0]


async def test_overlapping_batches_and_failed_write(ts_conn: Any) -> None:
    events = data.make_events(random.Random(2), 600, span=timedelta(minutes=30), first_id=1)
    await write_batch(
        ts_conn,
        data.process(data.new_core(), events[:400]),
        Progress(consumer="c", stream_seq=1),
        flavour="timescaledb",
    )
    await settle(ts_conn, "timescaledb")
    result = await write_batch(
        ts_conn,
        data.process(data.new_core(), events[200:]),
        Progress(consumer="c", stream_seq=2),
        flavour="timescaledb",
    )
    assert (result.stored, result.conflicts) == (200, 200)
    assert sorted(result.new_ids or []) == [e.detection_oid for e in events[400:]]
    rows = await ts_conn.fetch("SELECT detection_oid FROM utopia.detections ORDER BY 1")
    assert [r[0] for r in rows] == [e.detection_oid for e in events]
    progress = await ts_conn.fetchrow("SELECT stream_seq, stored, duplicates FROM utopia.consumer_progress")
    assert tuple(progress) == (2, 600, 200)
    with pytest.raises((OverflowError, asyncpg.DataError)):
        await write_batch(
            ts_conn,
            data.process(
                data.new_core(), data.make_events(random.Random(3), 50, span=timedelta(minutes=1), first_id=10_000)
            ),
            Progress(consumer="c", stream_seq=2**63),
            flavour="timescaledb",
        )
    assert await ts_conn.fetchval("SELECT count(*) FROM utopia.detections") == 600
    await settle(ts_conn, "timescaledb")
    by_view = await ts_conn.fetchval("SELECT sum(n) FROM utopia.detections_minute")
    assert by_view == 600


async def test_queries_match_raw(ts_conn: Any) -> None:
    events = await load_dataset(ts_conn, "timescaledb", settle_late=True, count=2000)
    await check_counts(ts_conn, events, random_ranges(random.Random(7), 6))
    await check_cameras(ts_conn, events, random.Random(8), 3)
    await check_pagination(ts_conn, events, None)
    await check_pagination(ts_conn, events, 3)
