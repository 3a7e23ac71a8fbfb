"""`utopia replay`: reprocess a time range of the DETECTIONS stream through the ingest path.

Idempotent: rows already stored stay single (the database's unique key, and a seen-set warmed
with the ids stored around the range), so replaying a range twice changes nothing. The core's
clock follows the messages' original publish times, so a copy that was a duplicate when it first
arrived is a duplicate again. An ephemeral consumer reads the range; the live ingest consumer is
not touched. Rejects were dead-lettered on first ingest and are only sent again when asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from utopia import Core
from utopia.config import Settings
from utopia.ingest.metrics import IngestMetrics
from utopia.ingest.pipeline import Pipeline
from utopia.ingest.worker import open_database
from utopia.storage.locations import fetch_locations
from utopia.storage.maintenance import refresh_rollups
from utopia.storage.writer import ingested_ids
from utopia_edge.connection import connect_options
from utopia_edge.contract import DETECTIONS_STREAM, DETECTIONS_SUBJECTS

log = logging.getLogger("utopia.replay")


@dataclass
class ReplayProgress:
    messages: int = 0
    total: int = 0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    last_seq: int = 0


async def replay(
    settings: Settings,
    start: datetime,
    end: datetime | None,
    *,
    dead_letter: bool = False,
    report: Callable[[ReplayProgress], None] = lambda _p: None,
) -> ReplayProgress:
    conn, flavour = await open_database(settings)
    nc = await nats.connect(**connect_options(settings.nats, name="utopia-replay"))
    progress = ReplayProgress()
    try:
        core = await _warmed_core(conn, settings, start, end)
        js = nc.jetstream()
        info = await js.stream_info(DETECTIONS_STREAM)
        # Messages published after this point belong to the live consumer, not to the replay.
        stop_seq = info.state.last_seq
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=start.astimezone(UTC),
            ack_policy=AckPolicy.NONE,
            filter_subject=DETECTIONS_SUBJECTS,
            inactive_threshold=60.0,
        )
        psub = await js.pull_subscribe(DETECTIONS_SUBJECTS, stream=DETECTIONS_STREAM, config=config)
        pipeline = Pipeline(
            settings, core, IngestMetrics(), js=js, nc=nc, flavour=flavour, consumer=None, dead_letter=dead_letter
        )
        try:
            await _run(psub, pipeline, progress, stop_seq=stop_seq, end=end, report=report)
        finally:
            await pipeline.close()
            await psub.unsubscribe()
        await refresh_rollups(conn, flavour, start, end or datetime.now(UTC))
        report(progress)
        return progress
    finally:
        await conn.close()
        await nc.close()


async def _warmed_core(conn: Any, settings: Settings, start: datetime, end: datetime | None) -> Core:
    core = Core(horizon_ms=int(settings.dedup.horizon_s * 1000))
    oids, names = await fetch_locations(conn)
    core.set_locations(oids, names)
    horizon = timedelta(seconds=settings.dedup.horizon_s)
    start_ms = int(start.timestamp() * 1000)
    for ids, seen_at in await ingested_ids(conn, start - horizon, end + horizon if end else None):
        core.warm(ids, seen_at, now_ms=start_ms)
    return core


async def _run(
    psub: Any,
    pipeline: Pipeline,
    progress: ReplayProgress,
    *,
    stop_seq: int,
    end: datetime | None,
    report: Callable[[ReplayProgress], None],
) -> None:
    fetch_batch = pipeline.settings.ingest.fetch_batch
    last_report = time.monotonic()
    while progress.last_seq < stop_seq:
        try:
            msgs = await psub.fetch(batch=fetch_batch, timeout=2.0)
        except nats.errors.TimeoutError:
            return  # nothing (more) in the range
        if msgs:
            progress.total = progress.messages + len(msgs) + msgs[-1].metadata.num_pending
        done = False
        keep = []
        for msg in msgs:
            if msg.metadata.sequence.stream > stop_seq or (end is not None and msg.metadata.timestamp >= end):
                done = True
                break
            keep.append(msg)
        if keep:
            newest_ms = int(max(m.metadata.timestamp for m in keep).timestamp() * 1000)
            item = await pipeline.process(keep, now_ms=newest_ms)
            result = await pipeline.write(item)
            await pipeline.finish(item, result)
            batch = item.batch
            progress.messages += len(keep)
            progress.received += batch.received
            progress.stored += result.stored
            progress.duplicates += batch.duplicates + result.conflicts
            progress.rejected += batch.rejected
            progress.last_seq = item.stream_seq
        if time.monotonic() - last_report >= 1.0:
            report(progress)
            last_report = time.monotonic()
        if done:
            return
