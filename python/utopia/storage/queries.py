"""Analytics queries: all of the read SQL lives here; used by the CLI and the API.

Counts by location and item combine the parts of [from, to) from `ranges.split_range`: whole days,
hours and minutes from the rollups `utopia.detections_item_{day,hour,minute}` and the ragged edges
from raw `utopia.detections` rows; per-camera figures use `utopia.detections_{minute,hour}`. Each
query is one statement (one snapshot). Both flavours expose the rollups under these names (plain:
views over rollup tables plus pending increments; TimescaleDB: continuous aggregates with
real-time aggregation).
Location names come from `utopia.locations` at query time, so a location loaded later resolves.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from utopia.storage.models import (
    Bucket,
    BucketCount,
    CameraStatus,
    ConsumerStats,
    Detection,
    DetectionPage,
    IngestStats,
    LocationCount,
    TopItem,
)
from utopia.storage.ranges import floor_to, split_range, to_utc

__all__ = [
    "cameras",
    "decode_cursor",
    "detections",
    "encode_cursor",
    "ingest_stats",
    "locations",
    "timeseries",
    "top_items",
]

Conn = Any  # asyncpg.Connection
_FIRST_FREE = 15  # $1..$14 are the segment bounds from split_range


@lru_cache(maxsize=64)
def _union(keys: tuple[str, ...], filters: tuple[str, ...] = ()) -> str:
    """Counts by `keys` ({t} = the time column) from raw rows and the location/item rollups."""
    where = "".join(f" AND {f}" for f in filters)

    def part(table: str, t: str, count: str, first: int, pairs: int) -> str:
        cols = ", ".join([k.format(t=t) for k in keys] + [f"{count} AS n"])
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
        ranges = " OR ".join(f"({t} >= ${first + 2 * i} AND {t} < ${first + 2 * i + 1})" for i in range(pairs))
        return f"SELECT {cols} FROM {table} WHERE ({ranges}){where}{group}"

    return "\nUNION ALL\n".join(
        [
            part("utopia.detections", "timestamp_detected", "count(*)", 1, 2),
            part("utopia.detections_item_minute", "bucket", "sum(n)", 5, 2),
            part("utopia.detections_item_hour", "bucket", "sum(n)", 9, 2),
            part("utopia.detections_item_day", "bucket", "sum(n)", 13, 1),
        ]
    )


def _filters(
    location: int | None, item: str | None = None, first: int = _FIRST_FREE
) -> tuple[tuple[str, ...], list[object]]:
    sql: list[str] = []
    args: list[object] = []
    if location is not None:
        args.append(location)
        sql.append(f"geographical_location_oid = ${first + len(args) - 1}")
    if item is not None:
        args.append(item)
        sql.append(f"item_name = ${first + len(args) - 1}")
    return tuple(sql), args


@lru_cache(maxsize=8)
def _top_items_sql(filters: tuple[str, ...], x_param: int) -> str:
    return f"""
WITH src AS ({_union(("geographical_location_oid", "item_name"), filters)}),
totals AS (SELECT geographical_location_oid, item_name, sum(n)::int8 AS n FROM src GROUP BY 1, 2),
ranked AS (
    SELECT geographical_location_oid, item_name, n,
           row_number() OVER (
               PARTITION BY geographical_location_oid ORDER BY n DESC, item_name COLLATE "C"
           ) AS item_rank
    FROM totals
)
SELECT r.geographical_location_oid, l.geographical_location, r.item_rank, r.item_name, r.n AS count
FROM ranked r LEFT JOIN utopia.locations l USING (geographical_location_oid)
WHERE r.item_rank <= ${x_param}
ORDER BY r.geographical_location_oid, r.item_rank"""


async def top_items(
    conn: Conn, x: int, start: datetime, end: datetime, *, location: int | None = None
) -> list[TopItem]:
    """The top `x` items per location over [start, end): ranked by count, ties by item_name."""
    if x < 1:
        raise ValueError("x must be at least 1")
    filters, args = _filters(location)
    sql = _top_items_sql(filters, _FIRST_FREE + len(args))
    rows = await conn.fetch(sql, *split_range(start, end), *args, x)
    return [TopItem(**dict(r)) for r in rows]


@lru_cache(maxsize=16)
def _timeseries_sql(bucket: Bucket, filters: tuple[str, ...]) -> str:
    keys = (f"date_trunc('{bucket}', {{t}}, 'UTC')", "geographical_location_oid", "item_name")
    return f"""
SELECT bucket, geographical_location_oid, item_name, sum(n)::int8 AS count
FROM ({_union(keys, filters)}) AS src (bucket, geographical_location_oid, item_name, n)
GROUP BY 1, 2, 3
ORDER BY bucket, geographical_location_oid, item_name COLLATE "C\""""


async def timeseries(
    conn: Conn,
    bucket: Bucket,
    start: datetime,
    end: datetime,
    *,
    location: int | None = None,
    item: str | None = None,
) -> list[BucketCount]:
    """Counts per (bucket, location, item) of the detections in [start, end); buckets are UTC."""
    if bucket not in ("minute", "hour", "day"):
        raise ValueError("bucket must be minute, hour or day")
    filters, args = _filters(location, item)
    rows = await conn.fetch(_timeseries_sql(bucket, filters), *split_range(start, end, bucket), *args)
    return [BucketCount(**dict(r)) for r in rows]


_CAMERAS_SQL = """
WITH recent AS (
    SELECT video_camera_oid, sum(n)::int8 AS n FROM (
        SELECT video_camera_oid, count(*) AS n FROM utopia.detections
        WHERE (timestamp_detected >= $1 AND timestamp_detected < $2)
           OR (timestamp_detected >= $3 AND timestamp_detected < $4)
        GROUP BY 1
        UNION ALL
        SELECT video_camera_oid, sum(n) FROM utopia.detections_minute WHERE bucket >= $5 AND bucket < $6 GROUP BY 1
    ) AS s GROUP BY 1
), seen AS (
    SELECT DISTINCT ON (video_camera_oid) video_camera_oid, geographical_location_oid, bucket
    FROM utopia.detections_hour WHERE bucket >= $7
    ORDER BY video_camera_oid, bucket DESC
)
SELECT s.video_camera_oid, s.geographical_location_oid, l.geographical_location,
       coalesce((SELECT max(d.timestamp_detected) FROM utopia.detections d
                 WHERE d.video_camera_oid = s.video_camera_oid AND d.timestamp_detected >= s.bucket),
                s.bucket) AS last_event,
       coalesce(r.n, 0) AS recent_count
FROM seen s
LEFT JOIN recent r USING (video_camera_oid)
LEFT JOIN utopia.locations l USING (geographical_location_oid)
ORDER BY s.video_camera_oid"""


async def cameras(
    conn: Conn,
    now: datetime,
    *,
    recent: timedelta = timedelta(minutes=5),
    silent_after: timedelta = timedelta(minutes=1),
    lookback: timedelta = timedelta(hours=24),
) -> list[CameraStatus]:
    """Cameras seen within `lookback`: last event, events in [now - recent, now), and `silent`
    when the last event is older than `silent_after`."""
    now = to_utc(now, "now")
    since = floor_to(now - lookback, timedelta(hours=1))
    rows = await conn.fetch(_CAMERAS_SQL, *split_range(now - recent, now, "minute")[:6], since)
    return [CameraStatus(**dict(r), silent=now - r["last_event"] > silent_after) for r in rows]


def encode_cursor(timestamp: datetime, detection_oid: int) -> str:
    micros = (to_utc(timestamp) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}.{detection_oid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (timestamp_detected, detection_oid) a page ended at; ValueError for a bad cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, oid = text.split(".")
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros)), int(oid)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise ValueError("cursor is not one this API returned") from None


@lru_cache(maxsize=2)
def _detections_sql(by_location: bool) -> str:
    loc = " AND d.geographical_location_oid = $6" if by_location else ""
    return f"""
SELECT d.geographical_location_oid, d.video_camera_oid, d.detection_oid, d.item_name, d.timestamp_detected,
       coalesce(l.geographical_location, d.geographical_location) AS geographical_location, d.ingested_at
FROM utopia.detections d LEFT JOIN utopia.locations l USING (geographical_location_oid)
WHERE d.timestamp_detected >= $1 AND d.timestamp_detected < $2
  AND (d.timestamp_detected, d.detection_oid) > ($3, $4){loc}
ORDER BY d.timestamp_detected, d.detection_oid
LIMIT $5"""


async def detections(
    conn: Conn,
    start: datetime,
    end: datetime,
    *,
    limit: int = 100,
    cursor: str | None = None,
    location: int | None = None,
) -> DetectionPage:
    """Stored detections in [start, end), oldest first, `limit` per page; pass `next_cursor` on."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    start, end = to_utc(start, "from"), to_utc(end, "to")
    after, after_oid = decode_cursor(cursor) if cursor else (start, 0)
    args: list[object] = [start, end, after, after_oid, limit + 1]
    if location is not None:
        args.append(location)
    rows = await conn.fetch(_detections_sql(location is not None), *args)
    items = [Detection(**dict(r)) for r in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(items[-1].timestamp_detected, items[-1].detection_oid) if more else None
    return DetectionPage(items=items, next_cursor=next_cursor)


_LOCATIONS_SQL = f"""
WITH c AS (
    SELECT geographical_location_oid, sum(n)::int8 AS n
    FROM ({_union(("geographical_location_oid",))}) s GROUP BY 1
)
SELECT l.geographical_location_oid, l.geographical_location, coalesce(c.n, 0) AS count
FROM utopia.locations l LEFT JOIN c USING (geographical_location_oid)
ORDER BY l.geographical_location_oid"""


async def locations(conn: Conn, start: datetime, end: datetime) -> list[LocationCount]:
    """Dataset B, each location with its detections in [start, end)."""
    rows = await conn.fetch(_LOCATIONS_SQL, *split_range(start, end))
    return [LocationCount(**dict(r)) for r in rows]


_STATS_SQL = """
SELECT consumer, stream_seq, batches, received, stored, duplicates, rejected, unmatched, updated_at,
       owner, owner_epoch
FROM utopia.consumer_progress ORDER BY consumer"""

_LAST_MINUTE_SQL = f"SELECT coalesce(sum(n), 0)::int8 FROM ({_union(())}) s"


async def ingest_stats(conn: Conn, now: datetime) -> IngestStats:
    """Totals recorded by the consumers, and detections timestamped within the last minute."""
    now = to_utc(now, "now")
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        consumers = [ConsumerStats(**dict(r)) for r in await conn.fetch(_STATS_SQL)]
        last_minute = await conn.fetchval(_LAST_MINUTE_SQL, *split_range(now - timedelta(minutes=1), now))
    return IngestStats(
        consumers=consumers,
        received=_total(consumers, "received"),
        stored=_total(consumers, "stored"),
        duplicates=_total(consumers, "duplicates"),
        rejected=_total(consumers, "rejected"),
        unmatched=_total(consumers, "unmatched"),
        last_commit_at=max((c.updated_at for c in consumers), default=None),
        detected_last_minute=last_minute,
    )


def _total(consumers: Sequence[ConsumerStats], name: str) -> int:
    return sum(int(getattr(c, name)) for c in consumers)
