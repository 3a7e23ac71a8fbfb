"""A fixed API for the snapshot tests: REST answers and a stream that sends one `stats` event and then
stays open and quiet, served through httpx's MockTransport (no servers, nothing changes over time)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from utopia_tui.client import ApiClient

LOCATIONS = {1: "Old Town", 2: "Harbour", 3: "Market Square"}
ITEMS = {1: {"person": 120, "car": 80, "bicycle": 30, "dog": 5}, 2: {"bus": 40, "car": 20}, 3: {"person": 9}}

# Four partitions: two workers alive, partition 3's owner gone (its lease lapsed, a takeover is due).
PARTITIONS = [
    {
        "partition": 0,
        "consumer": "ingest-0",
        "owner": "core-1-4242",
        "pending": 0,
        "ack_pending": 16,
        "acked_seq": 812_345,
    },
    {
        "partition": 1,
        "consumer": "ingest-1",
        "owner": "core-2-5151",
        "pending": 12,
        "ack_pending": 24,
        "acked_seq": 809_870,
    },
    {
        "partition": 2,
        "consumer": "ingest-2",
        "owner": "core-1-4242",
        "pending": 0,
        "ack_pending": 0,
        "acked_seq": 811_002,
    },
    {"partition": 3, "consumer": "ingest-3", "owner": None, "pending": 1_222, "ack_pending": 0, "acked_seq": 798_311},
]

REJECTS = [
    {"field": "item_name", "code": "missing", "reason": "item_name: missing", "subject": "utopia.detections.1"},
    {"field": "item_name", "code": "missing", "reason": "item_name: missing", "subject": "utopia.detections.2"},
    {"field": None, "code": "undecodable", "reason": "payload: not JSON", "subject": "utopia.detections.3"},
]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class FakeApi:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.stats: dict[str, Any] = {
            "at": _iso(self.now),
            "interval_s": 1.0,
            "received_per_s": 9876.0,
            "stored_per_s": 9500.0,
            "duplicates_per_s": 190.0,
            "rejected_per_s": 4.0,
            "unmatched_per_s": 0.0,
            "received": 1_000_000,
            "stored": 960_000,
            "duplicates": 39_000,
            "rejected": 1_000,
            "unmatched": 12,
            "pending": sum(p["pending"] for p in PARTITIONS),
            "ack_pending": sum(p["ack_pending"] for p in PARTITIONS),
            "partitions": PARTITIONS,
            "last_commit_at": _iso(self.now),
            "since_last_commit_s": 0.2,
            "notify_delay_ms": 4.0,
            "stream_clients": 1,
        }

    def client(self) -> ApiClient:
        return ApiClient("http://fake", "token", transport=httpx.MockTransport(self.handle))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/stream":
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=self._stream())
        body = {
            "/locations": self.locations,
            "/top-items": self.top_items,
            "/stats": lambda: {"live": self.stats, "stored": {k: self.stats[k] for k in ("stored", "rejected")}},
            "/cameras": self.cameras,
            "/timeseries": self.timeseries,
        }[path]()
        return httpx.Response(200, json=body)

    async def _stream(self) -> AsyncIterator[bytes]:
        yield b"event: stats\ndata: " + json.dumps(self.stats).encode() + b"\n\n"
        yield b"event: rejects\ndata: " + json.dumps(REJECTS).encode() + b"\n\n"
        await asyncio.Event().wait()

    def locations(self) -> list[dict[str, Any]]:
        return [{"geographical_location_oid": k, "geographical_location": v, "count": 1} for k, v in LOCATIONS.items()]

    def top_items(self) -> list[dict[str, Any]]:
        rows = []
        for oid, items in ITEMS.items():
            ranked = sorted(items.items(), key=lambda pair: (-pair[1], pair[0]))
            for rank, (item, count) in enumerate(ranked, 1):
                rows.append(
                    {
                        "geographical_location_oid": oid,
                        "geographical_location": LOCATIONS[oid],
                        "item_rank": rank,
                        "item_name": item,
                        "count": count,
                    }
                )
        return rows

    def cameras(self) -> list[dict[str, Any]]:
        rows = []
        for oid, name in LOCATIONS.items():
            for camera in (1, 2):
                silent = oid == 2 and camera == 2
                last = self.now - (timedelta(hours=2) if silent else timedelta(minutes=10))
                rows.append(
                    {
                        "video_camera_oid": oid * 100 + camera,
                        "geographical_location_oid": oid,
                        "geographical_location": name,
                        "last_event": _iso(last),
                        "recent_count": 0 if silent else 600 * camera,
                        "silent": silent,
                    }
                )
        return rows

    def timeseries(self) -> list[dict[str, Any]]:
        last = datetime.now(UTC).replace(second=0, microsecond=0)  # as the screen's own axis, at the request
        rows = []
        for i in range(15):
            for item, base in ITEMS[1].items():
                rows.append(
                    {
                        "bucket": _iso(last - timedelta(minutes=i)),
                        "geographical_location_oid": 1,
                        "item_name": item,
                        "count": base + (i * 7) % 11,
                    }
                )
        return rows
