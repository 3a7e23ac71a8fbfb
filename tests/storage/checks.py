"""Shared exactness checks of the analytics queries against the raw events (both flavours).

The data spans 4 hours across a day boundary, is written in several batches with the rollups
settled (plain: folded; TimescaleDB: refreshed) after some of them, and ends with late rows landing
in old, already settled buckets. Ranges are random, so they cut through minutes, hours and days.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from tests.storage import data
from tests.storage.data import LOCATIONS, T0, Event
from utopia.storage import Flavour, load_locations, queries, refresh_rollups, write_batch

SPAN = timedelta(hours=4)


async def settle(conn: Any, flavour: Flavour) -> None:
    """Fold pending increments (plain) or refresh the continuous aggregates (TimescaleDB)."""
    await refresh_rollups(conn, flavour, T0 - timedelta(days=1), T0 + timedelta(days=1))


async def load_dataset(conn: Any, flavour: Flavour, *, settle_late: bool = False, count: int = 6000) -> list[Event]:
    rng = random.Random(42)
    events = data.make_events(rng, count, span=SPAN, first_id=1)
    events.sort(key=lambda e: e.timestamp_detected)
    late = data.make_events(rng, count // 20, span=timedelta(minutes=70), first_id=100_000)  # old buckets, last
    await load_locations(conn, list(LOCATIONS.items()))
    core = data.new_core()
    step = count // 4
    for i in range(0, len(events), step):
        batch = data.process(core, events[i : i + step])
        await write_batch(conn, batch, None, flavour=flavour)
        core.commit(batch.token)
        if i < count // 2:
            await settle(conn, flavour)
    await write_batch(conn, data.process(core, late), None, flavour=flavour)
    if settle_late:
        await settle(conn, flavour)
    return events + late


def random_ranges(rng: random.Random, count: int) -> list[tuple[datetime, datetime]]:
    ranges = [
        (T0, T0 + SPAN),  # everything
        (T0 - timedelta(days=1), T0 + timedelta(days=1)),
        (T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)),  # whole hours 23:00-00:00
        (T0 + timedelta(seconds=10), T0 + timedelta(seconds=50)),  # inside one minute
        (T0 + timedelta(hours=1), T0 + timedelta(hours=1)),  # empty
    ]
    total_ms = SPAN // timedelta(milliseconds=1)
    for _ in range(count):
        a, b = sorted(rng.randrange(-60_000, total_ms + 60_000) for _ in range(2))
        ranges.append((T0 + timedelta(milliseconds=a), T0 + timedelta(milliseconds=b)))
    return ranges


async def check_counts(conn: Any, events: list[Event], ranges: list[tuple[datetime, datetime]]) -> None:
    """top_items, timeseries and locations equal the reference over every range."""
    for start, end in ranges:
        for x in (1, 3):
            got = await queries.top_items(conn, x, start, end)
            assert [(r.geographical_location_oid, r.item_rank, r.item_name, r.count) for r in got] == data.top_items(
                events, x, start, end
            ), (start, end, x)
            assert all(r.geographical_location == LOCATIONS.get(r.geographical_location_oid) for r in got)
        only = await queries.top_items(conn, 2, start, end, location=2)
        assert [(r.geographical_location_oid, r.item_rank, r.item_name, r.count) for r in only] == [
            row for row in data.top_items(events, 2, start, end) if row[0] == 2
        ]
        for bucket in ("minute", "hour", "day"):
            series = await queries.timeseries(conn, bucket, start, end)  # type: ignore[arg-type]
            expected = data.timeseries(events, bucket, start, end)
            assert [(r.bucket, r.geographical_location_oid, r.item_name, r.count) for r in series] == expected
        filtered = await queries.timeseries(conn, "hour", start, end, location=1, item="car")
        assert [(r.bucket, r.count) for r in filtered] == [
            (b, n) for b, loc, item, n in data.timeseries(events, "hour", start, end) if loc == 1 and item == "car"
        ]
        counts = Counter(e.geographical_location_oid for e in data.in_range(events, start, end))
        located = await queries.locations(conn, start, end)
        assert [(r.geographical_location_oid, r.geographical_location, r.count) for r in located] == [
            (oid, name, counts[oid]) for oid, name in sorted(LOCATIONS.items())
        ]


async def check_cameras(conn: Any, events: list[Event], rng: random.Random, count: int) -> None:
    """cameras() equals the reference at random moments."""
    for _ in range(count):
        now = T0 + timedelta(milliseconds=rng.randrange(SPAN // timedelta(milliseconds=1)))
        recent, silent_after, lookback = timedelta(minutes=5), timedelta(seconds=90), timedelta(hours=1)
        got = await queries.cameras(conn, now, recent=recent, silent_after=silent_after, lookback=lookback)
        since = (now - lookback).replace(minute=0, second=0, microsecond=0)
        seen = {e.video_camera_oid for e in events if e.at >= since}
        expected = []
        for cam in sorted(seen):
            mine = [e for e in events if e.video_camera_oid == cam]
            last = max(e.at for e in mine)
            n = sum(now - recent <= e.at < now for e in mine)
            loc = mine[0].geographical_location_oid
            expected.append((cam, loc, LOCATIONS.get(loc), last, n, now - last > silent_after))
        assert [
            (
                c.video_camera_oid,
                c.geographical_location_oid,
                c.geographical_location,
                c.last_event,
                c.recent_count,
                c.silent,
            )
            for c in got
        ] == expected


async def check_pagination(conn: Any, events: list[Event], location: int | None) -> None:
    """Walking detections() page by page yields exactly the reference rows, in order."""
    start, end = T0 + timedelta(minutes=17, seconds=3), T0 + timedelta(hours=2, minutes=1)
    expected = sorted(
        (e.timestamp_detected, e.detection_oid)
        for e in data.in_range(events, start, end)
        if location is None or e.geographical_location_oid == location
    )
    got: list[tuple[int, int]] = []
    cursor = None
    pages = 0
    while True:
        page = await queries.detections(conn, start, end, limit=97, cursor=cursor, location=location)
        got += [(data.ms(d.timestamp_detected), d.detection_oid) for d in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert got == expected
    assert pages == max(1, -(-len(expected) // 97))
    first = (await queries.detections(conn, start, end, limit=1, location=location)).items[0]
    assert first.geographical_location == LOCATIONS.get(first.geographical_location_oid)
