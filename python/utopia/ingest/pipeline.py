"""One batch of JetStream messages through the core into the database, then out to the DLQ and
the live feed. Shared by the ingest worker and `utopia replay`.

Order matters for the guarantees: rows are committed first (with the consumer progress in the
same transaction), then the core is told (`commit`), then rejects are dead-lettered and confirmed,
and only then may the caller acknowledge the messages. A crash anywhere before the ack means a
redelivery, which the database's unique key and the seen-set turn into duplicates, not doubles.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.errors

from utopia import Batch, Core
from utopia.config import Settings
from utopia.ingest.metrics import IngestMetrics
from utopia.ingest.partitions import published_subject
from utopia.storage.models import Flavour, Progress, WriteResult
from utopia.storage.writer import write_batch
from utopia_edge.contract import (
    DLQ_SUBJECT,
    HEADER_CONTENT_TYPE,
    HEADER_MSG_ID,
    HEADER_REJECT_REASON,
    HEADER_SOURCE_SEQ,
    HEADER_SOURCE_SUBJECT,
    LIVE_SUBJECT_PREFIX,
)

log = logging.getLogger("utopia.ingest")

LIVE_COUNTS = LIVE_SUBJECT_PREFIX + "counts"
LIVE_REJECTS = LIVE_SUBJECT_PREFIX + "rejects"
LIVE_DETECTIONS = LIVE_SUBJECT_PREFIX + "detections."
# Stay well under NATS's default 1 MiB max_payload for live messages.
LIVE_CHUNK_BYTES = 256 * 1024
# Errors that mean "the database is not reachable right now", worth retrying as they are.
TRANSIENT_DB_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


# A writer frozen mid-transaction (a paused VM, SIGSTOP) must not hold its locks for ever: the
# server ends its session, and a new owner's claim or COPY of the same rows is not blocked long.
WRITER_SESSION_SETTINGS = {
    "idle_in_transaction_session_timeout": "60s",
    "lock_timeout": "60s",
    "statement_timeout": "300s",
}


class Stopping(Exception):
    """The worker was asked to stop while a batch was still being written."""


@dataclass
class InFlight:
    """A processed batch and the messages it came from, until they are acknowledged."""

    msgs: Sequence[Any]
    batch: Batch
    stream_seq: int
    published_at: list[float]
    fetched_at: float = field(default_factory=time.monotonic)


def message_parts(msgs: Sequence[Any]) -> tuple[list[bytes], list[str], list[str | None]]:
    """What the core needs of each message: payload, subject and content type."""
    return (
        [m.data for m in msgs],
        [published_subject(m.subject) for m in msgs],
        [(m.headers or {}).get(HEADER_CONTENT_TYPE) for m in msgs],
    )


class Pipeline:
    """Owns the core and the database connection; one batch at a time through `write`."""

    def __init__(
        self,
        settings: Settings,
        core: Core,
        metrics: IngestMetrics,
        *,
        js: Any,
        nc: Any,
        flavour: Flavour,
        consumer: str | None,
        epoch: int = 0,
        dead_letter: bool = True,
    ) -> None:
        self.settings = settings
        self.core = core
        self.metrics = metrics
        self.js = js
        self.nc = nc
        self.flavour = flavour
        self.consumer = consumer
        self.epoch = epoch
        self.dead_letter = dead_letter
        self.stop = asyncio.Event()
        self._conn: Any = None

    async def process(self, msgs: Sequence[Any], *, now_ms: int | None = None) -> InFlight:
        payloads, subjects, content_types = message_parts(msgs)
        # The core releases the GIL; a thread lets the event loop keep writing meanwhile.
        batch = await asyncio.to_thread(self.core.process, payloads, subjects, content_types, now_ms=now_ms, live=True)
        seqs = [m.metadata.sequence.stream for m in msgs]
        published = [m.metadata.timestamp.timestamp() for m in msgs]
        self.metrics.batch_events.observe(batch.received)
        return InFlight(msgs=msgs, batch=batch, stream_seq=max(seqs), published_at=published)

    async def connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.settings.database.url, timeout=10, server_settings=WRITER_SESSION_SETTINGS
            )
        return self._conn

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            try:
                await self._conn.close(timeout=2)
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError):
                self._conn.terminate()

    async def _pause(self, delay: float) -> None:
        """Sleeps `delay`, or raises `Stopping` as soon as a stop is requested."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races it.
        try:
            async with asyncio.timeout(delay):
                await self.stop.wait()
        except TimeoutError:
            return
        raise Stopping

    async def write(self, item: InFlight) -> WriteResult:
        """Writes the batch, retrying with backoff while the database is away.

        Raises `Stopping`, or `Fenced` when another worker has taken the partition over.
        """
        delay = self.settings.ingest.retry_initial_s
        # A replay (no consumer name) leaves the live consumers' progress and totals alone.
        progress = (
            None
            if self.consumer is None
            else Progress(consumer=self.consumer, stream_seq=item.stream_seq, epoch=self.epoch)
        )
        while True:
            started = time.monotonic()
            try:
                conn = await self.connection()
                result = await write_batch(conn, item.batch, progress, flavour=self.flavour)
            except TRANSIENT_DB_ERRORS as exc:
                error: Exception = exc
            except asyncpg.PostgresError as exc:
                # Not a connection problem: keep the batch (nothing may be lost) and say so loudly.
                log.error("database rejected a batch; retrying", extra={"error": repr(exc), "seq": item.stream_seq})
                error = exc
            else:
                self.metrics.database_up.set(1)
                self.metrics.commit_seconds.observe(time.monotonic() - started)
                return result
            self.metrics.database_up.set(0)
            self.metrics.write_retries.inc()
            log.warning(
                "database write failed; will retry", extra={"error": repr(error), "retry_in_s": round(delay, 2)}
            )
            if self._conn is not None and not self._conn.is_closed():
                self._conn.terminate()
            self._conn = None
            await self._pause(delay)
            delay = min(delay * 2, self.settings.ingest.retry_max_s)

    async def finish(self, item: InFlight, result: WriteResult) -> None:
        """After the commit: seen-set, dead letters (confirmed), live feed, metrics."""
        batch = item.batch
        self.core.commit(batch.token)
        if self.dead_letter and batch.rejects:
            await self._dead_letter(item)
        now = time.time()
        self._observe(item, result, now)
        await self._publish_live(item, result, now)

    async def _dead_letter(self, item: InFlight) -> None:
        delay = self.settings.ingest.retry_initial_s
        while True:
            try:
                await asyncio.gather(*(self._publish_reject(item, reject) for reject in item.batch.rejects))
                return
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("dead-letter publish failed; will retry", extra={"error": repr(exc)})
            await self._pause(delay)
            delay = min(delay * 2, self.settings.ingest.retry_max_s)

    async def _publish_reject(self, item: InFlight, reject: Any) -> None:
        msg = item.msgs[reject.message_index]
        seq = msg.metadata.sequence.stream
        headers = {
            HEADER_REJECT_REASON: reject.reason,
            HEADER_SOURCE_SUBJECT: reject.subject,
            HEADER_SOURCE_SEQ: str(seq),
            # A redelivered message dead-letters the same event again: JetStream drops the copy.
            HEADER_MSG_ID: f"dlq:{seq}:{reject.event_index if reject.event_index is not None else 'message'}",
        }
        content_type = (msg.headers or {}).get(HEADER_CONTENT_TYPE)
        if content_type:
            headers[HEADER_CONTENT_TYPE] = content_type
        await self.js.publish(DLQ_SUBJECT, reject.payload, headers=headers, timeout=5)

    def _observe(self, item: InFlight, result: WriteResult, now: float) -> None:
        batch, events = item.batch, self.metrics.events
        events.labels("received").inc(batch.received)
        events.labels("accepted").inc(batch.accepted)
        events.labels("duplicate").inc(batch.duplicates)
        events.labels("rejected").inc(batch.rejected)
        events.labels("unmatched").inc(batch.unmatched)
        events.labels("stored").inc(result.stored)
        events.labels("conflict").inc(result.conflicts)
        for published in item.published_at:
            self.metrics.publish_to_commit_seconds.observe(max(now - published, 0.0))
        span = batch.timestamp_range()
        if span is not None:
            self.metrics.detection_age_seconds.observe(max(now - span[1] / 1000, 0.0))

    async def _publish_live(self, item: InFlight, result: WriteResult, now: float) -> None:
        """Core-NATS notifications of what was just committed; losing one loses no data."""
        batch = item.batch
        minute, location, camera, item_name, count = result.counts
        summary = {
            "committed_at_ms": int(now * 1000),
            "received": batch.received,
            "accepted": batch.accepted,
            "stored": result.stored,
            "duplicates": batch.duplicates + result.conflicts,
            "rejected": batch.rejected,
            "unmatched": batch.unmatched,
            "counts": {
                "minute_ms": minute,
                "geographical_location_oid": location,
                "video_camera_oid": camera,
                "item_name": item_name,
                "count": count,
            },
        }
        messages = [(LIVE_COUNTS, json.dumps(summary).encode())]
        if batch.rejects:
            rejects = [
                {"field": r.field, "code": r.code, "reason": r.reason, "subject": r.subject} for r in batch.rejects
            ]
            messages.append((LIVE_REJECTS, json.dumps(rejects).encode()))
        new_ids = None if result.new_ids is None else set(result.new_ids)
        for oid, body in batch.live():
            messages.extend((f"{LIVE_DETECTIONS}{oid}", chunk) for chunk in _live_chunks(body, new_ids))
        try:
            # Core NATS publish only appends to the client's buffer; it does not wait for the wire.
            for subject, payload in messages:
                await self.nc.publish(subject, payload)
        except nats.errors.Error as exc:
            log.debug("live notification not sent", extra={"error": repr(exc)})


def _live_chunks(body: bytes, new_ids: set[int] | None) -> list[bytes]:
    if new_ids is None and len(body) <= LIVE_CHUNK_BYTES:
        return [body]
    events = json.loads(body)
    if new_ids is not None:
        events = [e for e in events if e["detection_oid"] in new_ids]
    if not events:
        return []
    per_chunk = max(1, len(events) * LIVE_CHUNK_BYTES // max(len(body), 1))
    return [json.dumps(events[i : i + per_chunk]).encode() for i in range(0, len(events), per_chunk)]
