"""The write path against a real PostgreSQL: fast path, conflicts, atomicity, progress."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from tests.storage.data import Event, make_events, new_core, process
from utopia.storage import Progress, fold_rollups, recent_ids, write_batch
from utopia.storage.models import Fenced
from utopia.storage.writer import claim_consumer

pytestmark = pytest.mark.timeout(60)


def _minute_key(e: Event) -> tuple[int, int, int, str]:
    return (
        e.timestamp_detected - e.timestamp_detected % 60_000,
        e.geographical_location_oid,
        e.video_camera_oid,
        e.item_name,
    )


async def _stored(conn: Any) -> list[tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT detection_oid, (extract(epoch FROM timestamp_detected) * 1000)::int8 AS ts FROM utopia.detections"
    )
    return sorted((r[0], r[1]) for r in rows)


async def _rollup(conn: Any, view: str = "utopia.detections_minute") -> Counter[tuple[int, int, int, str]]:
    rows = await conn.fetch(
        f"SELECT (extract(epoch FROM bucket) * 1000)::int8, geographical_location_oid, video_camera_oid, item_name, "
        f"sum(n)::int8 FROM {view} GROUP BY 1, 2, 3, 4"
    )
    return Counter({(r[0], r[1], r[2], r[3]): r[4] for r in rows})


async def _progress(conn: Any, consumer: str = "c1") -> Any:
    return await conn.fetchrow("SELECT * FROM utopia.consumer_progress WHERE consumer = $1", consumer)


async def test_fast_path_stores_rows_counts_and_progress(conn: Any) -> None:
    events = make_events(random.Random(1), 500, span=timedelta(minutes=5), first_id=1)
    core = new_core()
    batch = process(core, events)
    result = await write_batch(conn, batch, Progress(consumer="c1", stream_seq=7), flavour="plain")
    core.commit(batch.token)

    assert result.all_new
    assert result.new_ids is None
    assert result.stored == 500
    assert result.conflicts == 0
    assert result.counts == batch.counts()
    assert await _stored(conn) == sorted((e.detection_oid, e.timestamp_detected) for e in events)
    assert await _rollup(conn) == Counter(_minute_key(e) for e in events)
    progress = await _progress(conn)
    assert (progress["stream_seq"], progress["batches"], progress["stored"], progress["received"]) == (7, 1, 500, 500)
    unmatched = sum(e.geographical_location_oid == 4 for e in events)
    assert progress["unmatched"] == unmatched
    names = await conn.fetch("SELECT DISTINCT geographical_location_oid, geographical_location FROM utopia.detections")
    assert {r[0]: r[1] for r in names} == {1: "Old Town", 2: "Harbour", 3: "Station", 4: None}


async def test_overlapping_batches_store_each_row_once_and_count_once(conn: Any) -> None:
    rng = random.Random(2)
    events = make_events(rng, 1000, span=timedelta(minutes=30), first_id=1)
    first, second = events[:600], events[400:]  # 200 shared rows: a replay after a crash
    b1 = process(new_core(), first)
    await write_batch(conn, b1, Progress(consumer="c1", stream_seq=10), flavour="plain")
    await fold_rollups(conn)  # some increments folded, the next ones pending: both must add up
    b2 = process(new_core(), second)  # a fresh core has no memory of the first batch
    result = await write_batch(conn, b2, Progress(consumer="c1", stream_seq=20), flavour="plain")

    assert not result.all_new
    assert result.stored == 400
    assert result.conflicts == 200
    assert sorted(result.new_ids or []) == [e.detection_oid for e in events[600:]]
    applied = Counter({(m, loc, cam, item): n for m, loc, cam, item, n in zip(*result.counts, strict=True)})
    assert applied == Counter(_minute_key(e) for e in events[600:])
    assert await _stored(conn) == sorted((e.detection_oid, e.timestamp_detected) for e in events)
    expected = Counter(_minute_key(e) for e in events)
    assert await _rollup(conn) == expected
    await fold_rollups(conn)
    assert await _rollup(conn) == expected
    hours = Counter()
    for (m, loc, cam, item), n in expected.items():
        hours[(m - m % 3_600_000, loc, cam, item)] += n
    assert await _rollup(conn, "utopia.detections_hour") == hours
    progress = await _progress(conn)
    assert (progress["stream_seq"], progress["batches"], progress["stored"], progress["duplicates"]) == (
        20,
        2,
        1000,
        200,
    )


async def test_batch_of_only_known_rows_changes_nothing_but_progress(conn: Any) -> None:
    events = make_events(random.Random(3), 50, span=timedelta(minutes=1), first_id=1)
    await write_batch(conn, process(new_core(), events), None, flavour="plain")
    before = await _rollup(conn)
    result = await write_batch(
        conn, process(new_core(), events), Progress(consumer="c1", stream_seq=3), flavour="plain"
    )
    assert result.stored == 0
    assert result.conflicts == 50
    assert result.new_ids == []
    assert await _rollup(conn) == before
    assert (await _progress(conn))["stream_seq"] == 3


async def test_empty_batch_records_progress(conn: Any) -> None:
    core = new_core()
    events = make_events(random.Random(4), 5, span=timedelta(minutes=1), first_id=1)
    batch = process(core, events)
    core.commit(batch.token)
    duplicates = process(core, events)  # all five are duplicates to the core itself
    assert duplicates.accepted == 0
    result = await write_batch(conn, duplicates, Progress(consumer="c1", stream_seq=99), flavour="plain")
    assert result.stored == 0
    assert result.all_new
    progress = await _progress(conn)
    assert (progress["stream_seq"], progress["duplicates"], progress["received"]) == (99, 5, 5)


@pytest.mark.parametrize("replay", [False, True], ids=["fast-path", "fallback"])
async def test_failed_write_leaves_nothing(conn: Any, replay: bool) -> None:
    events = make_events(random.Random(5), 200, span=timedelta(minutes=3), first_id=1)
    if replay:
        await write_batch(conn, process(new_core(), events[:10]), None, flavour="plain")
    before_rows, before_rollup = await _stored(conn), await _rollup(conn)
    bad_progress = Progress(consumer="c1", stream_seq=2**63)  # out of int8 range: fails after the COPY
    with pytest.raises((OverflowError, asyncpg.DataError)):
        await write_batch(conn, process(new_core(), events), bad_progress, flavour="plain")
    assert await _stored(conn) == before_rows
    assert await _rollup(conn) == before_rollup
    assert await _progress(conn) is None
    assert not conn.is_in_transaction()


async def test_refuses_to_run_inside_a_transaction(conn: Any) -> None:
    batch = process(new_core(), make_events(random.Random(6), 1, span=timedelta(seconds=1), first_id=1))
    async with conn.transaction():
        with pytest.raises(RuntimeError, match="owns its transaction"):
            await write_batch(conn, batch, None, flavour="plain")


async def test_concurrent_writers_of_overlapping_batches(db_url: str) -> None:
    events = make_events(random.Random(7), 3000, span=timedelta(minutes=10), first_id=1)
    conns = [await asyncpg.connect(db_url) for _ in range(3)]
    try:
        parts = [events[0:2000], events[1000:3000], events[500:2500]]
        results = await asyncio.gather(
            *(
                write_batch(c, process(new_core(), part), Progress(consumer=f"w{i}", stream_seq=i), flavour="plain")
                for i, (c, part) in enumerate(zip(conns, parts, strict=True))
            )
        )
        assert sum(r.stored for r in results) == 3000
        # An empty new_ids (every row already stored by another writer) is not "all new".
        committed = [
            i
            for r, part in zip(results, parts, strict=True)
            for i in (r.new_ids if r.new_ids is not None else [e.detection_oid for e in part])
        ]
        assert sorted(committed) == [e.detection_oid for e in events]
        assert await _stored(conns[0]) == sorted((e.detection_oid, e.timestamp_detected) for e in events)
        assert await _rollup(conns[0]) == Counter(_minute_key(e) for e in events)
    finally:
        for c in conns:
            await c.close()


async def test_recent_ids_for_dedup_warm_up(conn: Any) -> None:
    events = make_events(random.Random(8), 300, span=timedelta(minutes=2), first_id=1)
    await write_batch(conn, process(new_core(), events), None, flavour="plain")
    slices = await recent_ids(conn, 3600, slice_s=60)
    ids = [i for chunk, _ in slices for i in chunk]
    assert sorted(ids) == [e.detection_oid for e in events]
    now_ms = await conn.fetchval("SELECT (extract(epoch FROM now()) * 1000)::int8")
    assert all(now_ms - 60_000 < seen <= now_ms for _, seen_ms in slices for seen in seen_ms)
    await conn.execute("UPDATE utopia.detections SET ingested_at = now() - interval '2 hours'")
    assert await recent_ids(conn, 3600) == []


async def test_recent_ids_of_some_locations_only(conn: Any) -> None:
    events = make_events(random.Random(9), 300, span=timedelta(minutes=2), first_id=1)
    await write_batch(conn, process(new_core(), events), None, flavour="plain")
    slices = await recent_ids(conn, 3600, keep_location=lambda location: location % 2 == 0)
    ids = sorted(i for chunk, _ in slices for i in chunk)
    want = sorted(e.detection_oid for e in events if e.geographical_location_oid % 2 == 0)
    assert 0 < len(want) < len(events)
    assert ids == want


async def test_a_claim_fences_out_the_previous_owner(conn: Any) -> None:
    events = make_events(random.Random(10), 200, span=timedelta(minutes=2), first_id=1)
    first, second = events[:100], events[100:]
    old_epoch = await claim_consumer(conn, "ingest-3", "worker-a")
    await write_batch(conn, process(new_core(), first), Progress(consumer="ingest-3", stream_seq=1, epoch=old_epoch),
                      flavour="plain")  # fmt: skip
    new_epoch = await claim_consumer(conn, "ingest-3", "worker-b")
    assert new_epoch == old_epoch + 1
    stale = Progress(consumer="ingest-3", stream_seq=2, epoch=old_epoch)
    with pytest.raises(Fenced):
        await write_batch(conn, process(new_core(), second), stale, flavour="plain")
    # Nothing of the fenced batch was kept: not its rows, not its rollups, not its progress.
    assert await _stored(conn) == sorted((e.detection_oid, e.timestamp_detected) for e in first)
    assert await _rollup(conn) == Counter(_minute_key(e) for e in first)
    progress = await _progress(conn, "ingest-3")
    assert (progress["stream_seq"], progress["owner"], progress["owner_epoch"]) == (1, "worker-b", new_epoch)
    # The new owner writes under its own epoch.
    await write_batch(conn, process(new_core(), second), Progress(consumer="ingest-3", stream_seq=2, epoch=new_epoch),
                      flavour="plain")  # fmt: skip
    assert len(await _stored(conn)) == len(events)


async def test_a_claim_waits_for_the_commit_in_flight(conn: Any, db_url: str) -> None:
    """The takeover's warm-up must see what the old owner committed: the claim queues behind it."""
    epoch = await claim_consumer(conn, "ingest-0", "worker-a")
    other = await asyncpg.connect(db_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("UPDATE utopia.consumer_progress SET batches = batches + 1 WHERE consumer = 'ingest-0'")
        claim = asyncio.create_task(claim_consumer(other, "ingest-0", "worker-b"))
        await asyncio.sleep(0.3)
        assert not claim.done()
        await tx.commit()
        assert await asyncio.wait_for(claim, 5) == epoch + 1
    finally:
        await other.close()
