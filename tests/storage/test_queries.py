"""Analytics queries on the plain flavour against an independent computation over raw events."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.storage import data
from tests.storage.checks import SPAN, check_cameras, check_counts, check_pagination, load_dataset, random_ranges
from tests.storage.data import T0
from utopia.storage import Progress, queries, write_batch

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("settle_late", [False, True], ids=["late-pending", "late-folded"])
async def test_top_items_timeseries_and_locations_match_raw(conn: Any, settle_late: bool) -> None:
    events = await load_dataset(conn, "plain", settle_late=settle_late)
    await check_counts(conn, events, random_ranges(random.Random(7), 25))


async def test_cameras_match_raw(conn: Any) -> None:
    events = await load_dataset(conn, "plain")
    await check_cameras(conn, events, random.Random(8), 10)


@pytest.mark.parametrize("location", [None, 3])
async def test_detections_keyset_pagination(conn: Any, location: int | None) -> None:
    events = await load_dataset(conn, "plain")
    await check_pagination(conn, events, location)


async def test_bad_arguments(conn: Any) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await queries.detections(conn, T0, T0 + SPAN, cursor="not-a-cursor")
    with pytest.raises(ValueError, match="time zone"):
        await queries.top_items(conn, 1, datetime(2024, 1, 1), T0)  # naive on purpose
    with pytest.raises(ValueError, match="x must"):
        await queries.top_items(conn, 0, T0, T0 + SPAN)


async def test_ingest_stats(conn: Any) -> None:
    core = data.new_core()
    events = data.make_events(random.Random(9), 100, start=T0, span=timedelta(seconds=50), first_id=1)
    batch = data.process(core, events)
    await write_batch(conn, batch, Progress(consumer="a", stream_seq=5), flavour="plain")
    core.commit(batch.token)
    await write_batch(conn, data.process(core, events), Progress(consumer="b", stream_seq=9), flavour="plain")
    stats = await queries.ingest_stats(conn, T0 + timedelta(seconds=60))
    assert [c.consumer for c in stats.consumers] == ["a", "b"]
    assert (stats.received, stats.stored, stats.duplicates) == (200, 100, 100)
    assert stats.detected_last_minute == 100
    assert stats.last_commit_at is not None
