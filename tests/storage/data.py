"""Test data for the storage tests: events, core batches, and plain-Python reference answers."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import utopia

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2024, 3, 10, 22, 30, tzinfo=UTC)  # ranges cross hour and day boundaries
LOCATIONS = {1: "Old Town", 2: "Harbour", 3: "Station"}  # location 4 is never in Dataset B


@dataclass(frozen=True)
class Event:
    geographical_location_oid: int
    video_camera_oid: int
    detection_oid: int
    item_name: str
    timestamp_detected: int  # epoch ms

    @property
    def at(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.timestamp_detected)


def ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def make_events(rng: random.Random, count: int, *, start: datetime = T0, span: timedelta, first_id: int) -> list[Event]:
    items = ["person", "car", "bicycle", "bus", "dog", "Zebra", "ärger"]
    events = []
    for i in range(count):
        loc = rng.choice([1, 2, 3, 4])
        events.append(
            Event(
                geographical_location_oid=loc,
                video_camera_oid=loc * 10 + rng.randrange(3),
                detection_oid=first_id + i,
                item_name=rng.choice(items),
                timestamp_detected=ms(start) + rng.randrange(span // timedelta(milliseconds=1)),
            )
        )
    return events


def new_core() -> utopia.Core:
    core = utopia.Core()
    core.set_locations(list(LOCATIONS), list(LOCATIONS.values()))
    return core


def process(core: utopia.Core, events: Sequence[Event]) -> utopia.Batch:
    """One core batch: a message per location, as edge agents publish them."""
    by_loc: dict[int, list[dict[str, object]]] = defaultdict(list)
    for e in events:
        by_loc[e.geographical_location_oid].append(e.__dict__)
    payloads = [json.dumps(evs).encode() for evs in by_loc.values()]
    subjects = [f"utopia.detections.{loc}" for loc in by_loc]
    return core.process(payloads, subjects, [None] * len(payloads))


# -- reference answers over raw events ------------------------------------------------------------
def in_range(events: Iterable[Event], start: datetime, end: datetime) -> list[Event]:
    return [e for e in events if start <= e.at < end]


def top_items(events: Iterable[Event], x: int, start: datetime, end: datetime) -> list[tuple[int, int, str, int]]:
    counts = Counter((e.geographical_location_oid, e.item_name) for e in in_range(events, start, end))
    per_loc: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for (loc, item), n in counts.items():
        per_loc[loc].append((item, n))
    out = []
    for loc in sorted(per_loc):
        ranked = sorted(per_loc[loc], key=lambda p: (-p[1], p[0]))[:x]
        out += [(loc, rank, item, n) for rank, (item, n) in enumerate(ranked, 1)]
    return out


def truncate(at: datetime, bucket: str) -> datetime:
    if bucket == "minute":
        return at.replace(second=0, microsecond=0)
    if bucket == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def timeseries(
    events: Iterable[Event], bucket: str, start: datetime, end: datetime
) -> list[tuple[datetime, int, str, int]]:
    counts = Counter(
        (truncate(e.at, bucket), e.geographical_location_oid, e.item_name) for e in in_range(events, start, end)
    )
    return sorted(((b, loc, item, n) for (b, loc, item), n in counts.items()), key=lambda r: (r[0], r[1], r[2]))
