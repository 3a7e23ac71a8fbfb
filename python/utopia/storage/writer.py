"""The write path: one batch of accepted rows (from `Core.process`) in one transaction.

Fast path: binary `COPY` of `batch.copy_data` straight into `utopia.detections`, plus (plain
flavour) one statement that appends the batch's per-minute counts to `rollup_pending` and records
the consumer progress. If a row is already stored (unique key `(detection_oid,
timestamp_detected)`: a replay, or a re-delivery after a crash between commit and ack), the
transaction is rolled back whole and the batch is written again through a path that skips stored
rows: `COPY` into a temporary table, `INSERT ... ON CONFLICT DO NOTHING RETURNING`, and rollup
increments computed from the rows actually inserted, so nothing is counted twice.

Always call it outside a transaction: it owns its own. If it raises, nothing was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from utopia import COPY_COLUMNS
from utopia.storage.models import Fenced, Flavour, Progress, WriteResult

__all__ = ["BatchLike", "claim_consumer", "ingested_ids", "recent_ids", "write_batch"]

Conn = Any  # asyncpg.Connection
Counts = tuple[list[int], list[int], list[int], list[str], list[int]]


class BatchLike(Protocol):
    """What the writer reads from a `utopia.Batch`."""

    @property
    def copy_data(self) -> bytes: ...
    @property
    def accepted(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def unmatched(self) -> int: ...
    def ids(self) -> list[int]: ...
    def counts(self) -> Counts: ...


_PENDING_INSERT = """
INSERT INTO utopia.rollup_pending (minute_ms, geographical_location_oids, video_camera_oids, item_names, counts)
VALUES (${0}::int8[], ${1}::int8[], ${2}::int8[], ${3}::text[], ${4}::int8[])
"""

_PROGRESS_SQL = """
INSERT INTO utopia.consumer_progress AS p
    (consumer, stream_seq, batches, received, stored, duplicates, rejected, unmatched, owner_epoch, updated_at)
VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, now())
ON CONFLICT (consumer) DO UPDATE SET
    stream_seq = GREATEST(p.stream_seq, EXCLUDED.stream_seq),
    batches = p.batches + 1,
    received = p.received + EXCLUDED.received,
    stored = p.stored + EXCLUDED.stored,
    duplicates = p.duplicates + EXCLUDED.duplicates,
    rejected = p.rejected + EXCLUDED.rejected,
    unmatched = p.unmatched + EXCLUDED.unmatched,
    updated_at = now()
WHERE p.owner_epoch = EXCLUDED.owner_epoch
RETURNING true
"""

_PENDING_SQL = _PENDING_INSERT.format(1, 2, 3, 4, 5)
# Progress and pending rollup increments in one round trip (plain flavour).
_PROGRESS_AND_PENDING_SQL = (
    f"WITH pending AS ({_PENDING_INSERT.format(9, 10, 11, 12, 13).strip()})\n{_PROGRESS_SQL.strip()}"
)

# Waits for a commit in flight on the same consumer (row lock), so whatever the previous owner
# committed is visible to the new owner's warm-up that follows.
_CLAIM_SQL = """
INSERT INTO utopia.consumer_progress AS p (consumer, owner, owner_epoch) VALUES ($1, $2, 1)
ON CONFLICT (consumer) DO UPDATE SET owner = EXCLUDED.owner, owner_epoch = p.owner_epoch + 1
RETURNING owner_epoch
"""

_COLUMN_LIST = ", ".join(COPY_COLUMNS)
_FALLBACK_INSERT_SQL = f"""
WITH ins AS (
    INSERT INTO utopia.detections ({_COLUMN_LIST})
    SELECT {_COLUMN_LIST} FROM utopia_incoming
    ON CONFLICT DO NOTHING
    RETURNING detection_oid, geographical_location_oid, video_camera_oid, item_name, timestamp_detected
)
SELECT (extract(epoch FROM date_trunc('minute', timestamp_detected, 'UTC')) * 1000)::int8 AS minute_ms,
       geographical_location_oid, video_camera_oid, item_name, count(*) AS n, array_agg(detection_oid) AS ids
FROM ins
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""

_RECENT_IDS_SQL = """
SELECT coalesce(array_agg(detection_oid), '{}'),
       coalesce(array_agg((extract(epoch FROM ingested_at) * 1000)::int8), '{}'),
       coalesce(array_agg(geographical_location_oid), '{}')
FROM utopia.detections
WHERE ingested_at >= $1 AND ingested_at < $2
"""


async def write_batch(conn: Conn, batch: BatchLike, progress: Progress | None, *, flavour: Flavour) -> WriteResult:
    """Write `batch` and `progress` atomically; see the module docstring."""
    if conn.is_in_transaction():
        raise RuntimeError("write_batch owns its transaction; call it outside one")
    try:
        async with conn.transaction():
            if batch.accepted:
                await conn.copy_to_table(
                    "detections",
                    schema_name="utopia",
                    source=memoryview(batch.copy_data),
                    format="binary",
                    columns=COPY_COLUMNS,
                )
            counts = batch.counts()
            await _finish(conn, batch, progress, flavour, stored=batch.accepted, conflicts=0, counts=counts)
        return WriteResult(stored=batch.accepted, conflicts=0, new_ids=None, counts=counts)
    except asyncpg.UniqueViolationError:
        pass
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE utopia_incoming (LIKE utopia.detections INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await conn.copy_to_table(
            "utopia_incoming", source=memoryview(batch.copy_data), format="binary", columns=COPY_COLUMNS
        )
        rows = await conn.fetch(_FALLBACK_INSERT_SQL)
        counts = (
            [r["minute_ms"] for r in rows],
            [r["geographical_location_oid"] for r in rows],
            [r["video_camera_oid"] for r in rows],
            [r["item_name"] for r in rows],
            [r["n"] for r in rows],
        )
        new_ids = [i for r in rows for i in r["ids"]]
        conflicts = batch.accepted - len(new_ids)
        await _finish(conn, batch, progress, flavour, stored=len(new_ids), conflicts=conflicts, counts=counts)
    return WriteResult(stored=len(new_ids), conflicts=conflicts, new_ids=new_ids, counts=counts)


async def _finish(
    conn: Conn,
    batch: BatchLike,
    progress: Progress | None,
    flavour: Flavour,
    *,
    stored: int,
    conflicts: int,
    counts: Counts,
) -> None:
    """Pending rollup increments (plain flavour) and the consumer progress, in one statement."""
    pending = flavour == "plain" and bool(counts[0])
    if progress is None and not pending:
        return
    args = (
        progress.consumer if progress else "",
        progress.stream_seq if progress else 0,
        batch.received,
        stored,
        batch.duplicates + conflicts,
        batch.rejected,
        batch.unmatched,
    )
    if progress is None:
        await conn.execute(_PENDING_SQL, *counts)
        return
    if pending:
        recorded = await conn.fetchval(_PROGRESS_AND_PENDING_SQL, *args, progress.epoch, *counts)
    else:
        recorded = await conn.fetchval(_PROGRESS_SQL, *args, progress.epoch)
    if not recorded:
        raise Fenced(f"consumer {progress.consumer} was claimed by another worker (epoch {progress.epoch} is stale)")


async def claim_consumer(conn: Conn, consumer: str, owner: str) -> int:
    """Takes `consumer` over for `owner`; returns the new epoch, which fences out earlier owners."""
    epoch: int = await conn.fetchval(_CLAIM_SQL, consumer, owner)
    return epoch


async def recent_ids(
    conn: Conn, horizon_s: float, *, slice_s: float = 300.0, keep_location: Callable[[int], bool] | None = None
) -> list[tuple[list[int], list[int]]]:
    """Dedup warm-up: (ids, ingested_at epoch ms) of the rows ingested within the last `horizon_s`.

    Returned in time slices, oldest first, so a caller can feed `Core.warm` piecewise; columnar
    arrays keep it fast for millions of ids. `keep_location` narrows it to some locations (a
    partition's).
    """
    now: datetime = await conn.fetchval("SELECT now()")
    return await ingested_ids(
        conn, now - timedelta(seconds=horizon_s), None, slice_s=slice_s, keep_location=keep_location
    )


async def ingested_ids(
    conn: Conn,
    start: datetime,
    end: datetime | None,
    *,
    slice_s: float = 300.0,
    keep_location: Callable[[int], bool] | None = None,
) -> list[tuple[list[int], list[int]]]:
    """(ids, ingested_at epoch ms) of the rows ingested in [start, end) (`end` None: up to now)."""
    now: datetime = await conn.fetchval("SELECT now()")
    stop = min(end, now) if end is not None else now
    slices: list[tuple[list[int], list[int]]] = []
    while True:
        upper = start + timedelta(seconds=slice_s)
        last = upper >= stop
        bound = (end if end is not None else datetime.max.replace(tzinfo=UTC)) if last else upper
        ids, seen, locations = await conn.fetchrow(_RECENT_IDS_SQL, start, bound)
        if keep_location is not None:
            # Millions of rows at a takeover: filtered off the event loop.
            ids, seen = await asyncio.to_thread(_only_locations, ids, seen, locations, keep_location)
        if ids:
            slices.append((list(ids), list(seen)))
        if last:
            return slices
        start = upper


def _only_locations(
    ids: list[int], seen: list[int], locations: list[int], keep: Callable[[int], bool]
) -> tuple[list[int], list[int]]:
    # Few locations, many rows: decide once per location.
    verdicts = {location: keep(location) for location in set(locations)}
    picked = [i for i, location in enumerate(locations) if verdicts[location]]
    return [ids[i] for i in picked], [seen[i] for i in picked]
