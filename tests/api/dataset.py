"""A small known dataset and its expected answers, computed plainly in Python."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.ingest.harness import Message

LOCATIONS = {1: "Old Town", 2: "Harbour", 3: "Market Square"}
ITEMS = ["bicycle", "bus", "car", "dog", "person"]
# Location 4 is not in Dataset B: its events are stored and counted as unmatched.
WEIGHTS = {1: [5, 5, 9, 1, 12], 2: [0, 3, 3, 3, 7], 3: [2, 8, 1, 1, 1], 4: [4, 0, 0, 2, 0]}


@dataclass(frozen=True)
class Row:
    location: int
    camera: int
    oid: int
    item: str
    ts: datetime


@dataclass
class Dataset:
    rows: list[Row]  # what must be stored: one row per detection_oid, the first copy
    messages: list[Message]
    start: datetime  # every row lies in [start, end)
    end: datetime
    duplicates: int

    @staticmethod
    def build(seed: int = 7) -> Dataset:
        rng = random.Random(seed)
        now = datetime.now(UTC).replace(microsecond=0)
        start = now.replace(minute=0, second=0) - timedelta(hours=3)
        rows: list[Row] = []
        oid = 1000
        for location, weights in WEIGHTS.items():
            for item, weight in zip(ITEMS, weights, strict=True):
                for _ in range(weight * 3):
                    oid += 1
                    ts = start + timedelta(seconds=rng.randint(0, 2 * 3600 - 1), milliseconds=rng.randint(0, 999))
                    rows.append(Row(location, location * 10 + rng.randint(1, 2), oid, item, ts))
        # Recent traffic of camera 11 (one minute ago), for /cameras.
        for _ in range(4):
            oid += 1
            rows.append(Row(1, 11, oid, "person", now - timedelta(seconds=60)))
        rng.shuffle(rows)
        messages: list[Message] = []
        for location in WEIGHTS:
            mine = [r for r in rows if r.location == location]
            for i in range(0, len(mine), 20):
                messages.append(_message(location, mine[i : i + 20], f"m-{location}-{i}"))
        # Upstream retries of stored detections with another item: duplicates, never counted.
        retries = [Row(r.location, r.camera, r.oid, "truck", r.ts) for r in rows[:15]]
        for location in WEIGHTS:
            mine = [r for r in retries if r.location == location]
            if mine:
                messages.append(_message(location, mine, f"retry-{location}"))
        return Dataset(rows, messages, start, now, duplicates=len(retries))

    def top_items(self, x: int, location: int | None = None) -> list[dict[str, object]]:
        counts = Counter((r.location, r.item) for r in self.rows if location in (None, r.location))
        out: list[dict[str, object]] = []
        for loc in sorted({loc for loc, _ in counts}):
            ranked = sorted(((-n, item) for (lo, item), n in counts.items() if lo == loc))[:x]
            for rank, (neg, item) in enumerate(ranked, 1):
                out.append(
                    {
                        "geographical_location_oid": loc,
                        "geographical_location": LOCATIONS.get(loc),
                        "item_rank": rank,
                        "item_name": item,
                        "count": -neg,
                    }
                )
        return out

    def hourly(self, location: int | None = None, item: str | None = None) -> Counter[tuple[datetime, int, str]]:
        return Counter(
            (r.ts.replace(minute=0, second=0, microsecond=0), r.location, r.item)
            for r in self.rows
            if location in (None, r.location) and item in (None, r.item)
        )

    def ordered(self, location: int | None = None) -> list[Row]:
        return sorted((r for r in self.rows if location in (None, r.location)), key=lambda r: (r.ts, r.oid))


def _message(location: int, rows: list[Row], msg_id: str) -> Message:
    events = [
        {
            "geographical_location_oid": r.location,
            "video_camera_oid": r.camera,
            "detection_oid": r.oid,
            "item_name": r.item,
            "timestamp_detected": round(r.ts.timestamp() * 1000),
        }
        for r in rows
    ]
    headers = {"Content-Type": "application/json", "Nats-Msg-Id": msg_id}
    return (f"utopia.detections.{location}", json.dumps(events).encode(), headers)
