"""The live feed: one NATS subscription to `utopia.live.>` per API process, fanned out to the
`/stream` clients, and the `stats` ticker.

Frames are encoded once and shared by all clients. Each client has a bounded queue: when it is
full the oldest frame goes and the client is told how many it missed with a `lagged` event, so a
slow reader costs only its own queue and never delays the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors

from utopia.ingest.status import PartitionStatus, partition_status
from utopia_server.metrics import ApiMetrics
from utopia_server.models import LiveStats

__all__ = ["Client", "LiveHub", "frame"]

log = logging.getLogger("utopia.api.hub")

LIVE_PREFIX = "utopia.live."
_TOTALS = ("received", "stored", "duplicates", "rejected", "unmatched")


def frame(event: str, data: bytes | str) -> bytes:
    """One SSE event; `data` is single-line JSON."""
    body = data.encode() if isinstance(data, str) else data
    return b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


class Client:
    """One `/stream` connection: what it asked for and its bounded queue of frames."""

    def __init__(self, maxlen: int, *, detections: bool, locations: frozenset[int] | None) -> None:
        self.queue: collections.deque[bytes] = collections.deque(maxlen=maxlen)
        self.wake = asyncio.Event()
        self.dropped = 0
        self.detections = detections
        self.locations = locations

    def push(self, data: bytes) -> bool:
        """Queues a frame; returns True when the oldest one had to go."""
        full = len(self.queue) == self.queue.maxlen
        if full:
            self.dropped += 1
        self.queue.append(data)
        self.wake.set()
        return full

    def wants(self, location: int) -> bool:
        return self.detections and (self.locations is None or location in self.locations)


class LiveHub:
    def __init__(self, nc: Any, metrics: ApiMetrics, *, queue: int, interval_s: float, consumer: str) -> None:
        self.nc = nc
        self.metrics = metrics
        self.queue = queue
        self.interval_s = interval_s
        self.consumer = consumer
        self.clients: set[Client] = set()
        self.totals = dict.fromkeys(_TOTALS, 0)
        self._window = dict.fromkeys(_TOTALS, 0)
        self.pending: int | None = None
        self.ack_pending: int | None = None
        self.partitions: list[PartitionStatus] = []
        self.last_commit_ms: int | None = None
        self.notify_delay_ms: float | None = None
        self.latest = self._snapshot(0.0)
        self._sub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(LIVE_PREFIX + ">", cb=self._on_message, pending_msgs_limit=-1)
        self._tasks.append(asyncio.create_task(self._tick(), name="utopia-api-stats"))

    async def stop(self) -> None:
        # A flag, not only cancellation: a NATS request may swallow a CancelledError.
        self._stopping.set()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()

    # -- clients -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connect(self, *, detections: bool, locations: frozenset[int] | None) -> AsyncIterator[Client]:
        client = Client(self.queue, detections=detections, locations=locations)
        self.clients.add(client)
        self.metrics.sse_clients.set(len(self.clients))
        try:
            yield client
        finally:
            self.clients.discard(client)
            self.metrics.sse_clients.set(len(self.clients))

    def broadcast(self, data: bytes, location: int | None = None) -> None:
        dropped = 0
        for client in self.clients:
            if location is None or client.wants(location):
                dropped += client.push(data)
        if dropped:
            self.metrics.sse_dropped.inc(dropped)

    # -- the live feed ---------------------------------------------------------------------------

    async def _on_message(self, msg: Any) -> None:
        kind = msg.subject[len(LIVE_PREFIX) :]
        if kind == "counts":
            self.metrics.live_messages.labels("counts").inc()
            self._count(msg.data)
            self.broadcast(frame("counts", msg.data))
        elif kind.startswith("detections."):
            self.metrics.live_messages.labels("detections").inc()
            try:
                location = int(kind.rsplit(".", 1)[1])
            except ValueError:
                return
            if any(c.wants(location) for c in self.clients):
                self.broadcast(frame("detections", msg.data), location)
        elif kind == "rejects":
            # Why events were dead-lettered ([{field, code, reason, subject}]), for the dashboards.
            self.metrics.live_messages.labels("rejects").inc()
            self.broadcast(frame("rejects", msg.data))
        else:
            self.metrics.live_messages.labels("other").inc()

    def _count(self, data: bytes) -> None:
        try:
            summary = json.loads(data)
            values = {name: int(summary[name]) for name in _TOTALS}
            committed = int(summary["committed_at_ms"])
        except (ValueError, KeyError, TypeError):
            log.warning("malformed utopia.live.counts message ignored")
            return
        for name, value in values.items():
            self.totals[name] += value
            self._window[name] += value
        self.last_commit_ms = committed
        self.notify_delay_ms = max(time.time() * 1000 - committed, 0.0)

    # -- stats ---------------------------------------------------------------------------------

    async def _tick(self) -> None:
        last = time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
                return
            await self._poll_lag()
            now = time.monotonic()
            self.latest = self._snapshot(now - last)
            last = now
            self._window = dict.fromkeys(_TOTALS, 0)
            self.metrics.nats_up.set(1 if self.nc.is_connected else 0)
            self.broadcast(frame("stats", msgspec.json.encode(self.latest)))

    async def _poll_lag(self) -> None:
        try:
            async with asyncio.timeout(max(self.interval_s / 2, 0.5)):
                self.partitions = await partition_status(self.nc.jetstream(timeout=0.5), self.consumer)
        except (nats.errors.Error, TimeoutError, OSError):
            self.pending = self.ack_pending = None
            self.partitions = []
            return
        self.pending = sum(p.pending for p in self.partitions) if self.partitions else None
        self.ack_pending = sum(p.ack_pending for p in self.partitions) if self.partitions else None

    def _snapshot(self, elapsed: float) -> LiveStats:
        span = max(elapsed, 1e-9)
        now = time.time()
        last = self.last_commit_ms
        return LiveStats(
            at=datetime.fromtimestamp(now, UTC),
            interval_s=round(elapsed, 3),
            received_per_s=self._window["received"] / span,
            stored_per_s=self._window["stored"] / span,
            duplicates_per_s=self._window["duplicates"] / span,
            rejected_per_s=self._window["rejected"] / span,
            unmatched_per_s=self._window["unmatched"] / span,
            pending=self.pending,
            ack_pending=self.ack_pending,
            partitions=self.partitions,
            last_commit_at=None if last is None else datetime.fromtimestamp(last / 1000, UTC),
            since_last_commit_s=None if last is None else max(now - last / 1000, 0.0),
            notify_delay_ms=self.notify_delay_ms,
            stream_clients=len(self.clients),
            **self.totals,
        )
