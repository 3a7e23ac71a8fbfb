"""Policies and periodic maintenance: partitions, retention, compression, rollup folding.

Plain PostgreSQL: `maintain()` creates partitions ahead of time (moving any rows the default
partition caught for their range), drops partitions past `storage.retention_days`, trims the
per-minute rollup past `storage.minute_rollup_retention_days` and folds the pending rollup
increments. Run it at migrate time and periodically (ingest: every few seconds for the fold, it is
cheap when there is little to do). Rollup history outlives raw retention: only partitions of raw
rows are dropped, the hour rollup is kept.

TimescaleDB: `apply_policies()` sets chunk width, compression, retention and refresh policies, which
TimescaleDB's own jobs run; `refresh_rollups()` re-aggregates a range at once (late data, replay).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from utopia.config import StorageSettings
from utopia.storage.models import Flavour

__all__ = ["apply_policies", "ensure_partitions", "fold_rollups", "maintain", "refresh_rollups"]

Conn = Any  # asyncpg.Connection

_FOLD_LOCK_KEY = 0x7574_6F70_6966  # one fold at a time (keeps upserts deadlock-free)
_PART_RE = re.compile(r"^detections_p(\d{8})_(\d{8})$")
_EPOCH = date(1970, 1, 1)

_FOLD_SQL = """
WITH p AS (
    DELETE FROM utopia.rollup_pending
    RETURNING minute_ms, geographical_location_oids, video_camera_oids, item_names, counts
), d AS (
    SELECT 'epoch'::timestamptz + u.m * INTERVAL '1 millisecond' AS bucket,
           u.l AS geographical_location_oid, u.c AS video_camera_oid, u.i AS item_name, u.n AS n
    FROM p CROSS JOIN LATERAL unnest(
        p.minute_ms, p.geographical_location_oids, p.video_camera_oids, p.item_names, p.counts
    ) AS u(m, l, c, i, n)
), m AS (
    INSERT INTO utopia.rollup_minute AS r
    SELECT bucket, geographical_location_oid, video_camera_oid, item_name, sum(n)
    FROM d GROUP BY 1, 2, 3, 4
    ON CONFLICT (bucket, geographical_location_oid, video_camera_oid, item_name)
    DO UPDATE SET n = r.n + EXCLUDED.n
), h AS (
    INSERT INTO utopia.rollup_hour AS r
    SELECT date_trunc('hour', bucket, 'UTC'), geographical_location_oid, video_camera_oid, item_name, sum(n)
    FROM d GROUP BY 1, 2, 3, 4
    ON CONFLICT (bucket, geographical_location_oid, video_camera_oid, item_name)
    DO UPDATE SET n = r.n + EXCLUDED.n
), im AS (
    INSERT INTO utopia.rollup_item_minute AS r
    SELECT bucket, geographical_location_oid, item_name, sum(n) FROM d GROUP BY 1, 2, 3
    ON CONFLICT (bucket, geographical_location_oid, item_name) DO UPDATE SET n = r.n + EXCLUDED.n
), ih AS (
    INSERT INTO utopia.rollup_item_hour AS r
    SELECT date_trunc('hour', bucket, 'UTC'), geographical_location_oid, item_name, sum(n) FROM d GROUP BY 1, 2, 3
    ON CONFLICT (bucket, geographical_location_oid, item_name) DO UPDATE SET n = r.n + EXCLUDED.n
), id AS (
    INSERT INTO utopia.rollup_item_day AS r
    SELECT date_trunc('day', bucket, 'UTC'), geographical_location_oid, item_name, sum(n) FROM d GROUP BY 1, 2, 3
    ON CONFLICT (bucket, geographical_location_oid, item_name) DO UPDATE SET n = r.n + EXCLUDED.n
)
SELECT count(*) FROM d
"""


async def fold_rollups(conn: Conn) -> int:
    """Plain flavour: move pending increments into the minute and hour rollups; returns rows folded."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _FOLD_LOCK_KEY)
        folded: int = await conn.fetchval(_FOLD_SQL)
    return folded


def _partition_name(start: date, end: date) -> str:
    return f"detections_p{start:%Y%m%d}_{end:%Y%m%d}"


async def _partitions(conn: Conn) -> list[tuple[str, date, date]]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'utopia.detections'::regclass"""
    )
    found = []
    for row in rows:
        match = _PART_RE.match(row["relname"])
        if match:
            start = datetime.strptime(match.group(1), "%Y%m%d").date()
            end = datetime.strptime(match.group(2), "%Y%m%d").date()
            found.append((row["relname"], start, end))
    return sorted(found, key=lambda p: p[1])


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def ensure_partitions(conn: Conn, settings: StorageSettings, now: datetime) -> list[str]:
    """Create the partitions from yesterday to `partitions_ahead` days ahead; returns those created."""
    width = settings.partition_days
    today = now.astimezone(UTC).date()
    first = _EPOCH + timedelta(days=((today - _EPOCH).days - 1) // width * width)
    last = today + timedelta(days=settings.partitions_ahead)
    existing = await _partitions(conn)
    created = []
    start = first
    while start <= last:
        end = start + timedelta(days=width)
        if not any(s < end and start < e for _, s, e in existing):
            await _create_partition(conn, start, end)
            created.append(_partition_name(start, end))
        start = end
    return created


async def _create_partition(conn: Conn, start: date, end: date) -> None:
    name = _partition_name(start, end)
    lo, hi = _day_start(start), _day_start(end)
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '10s'")
        caught = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM utopia.detections_default WHERE timestamp_detected >= $1 "
            "AND timestamp_detected < $2)",
            lo,
            hi,
        )
        if caught:  # rows of this range went to the default partition: move them into the new one
            await conn.execute("CREATE TEMP TABLE utopia_moving (LIKE utopia.detections) ON COMMIT DROP")
            await conn.execute(
                "WITH d AS (DELETE FROM utopia.detections_default WHERE timestamp_detected >= $1 "
                "AND timestamp_detected < $2 RETURNING *) INSERT INTO utopia_moving SELECT * FROM d",
                lo,
                hi,
            )
        await conn.execute(
            f"CREATE TABLE utopia.{name} PARTITION OF utopia.detections "
            f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        )
        if caught:
            await conn.execute("INSERT INTO utopia.detections SELECT * FROM utopia_moving")


async def _drop_expired(conn: Conn, settings: StorageSettings, now: datetime) -> list[str]:
    cutoff = now - timedelta(days=settings.retention_days)
    dropped = []
    for name, _start, end in await _partitions(conn):
        if _day_start(end) <= cutoff:
            await conn.execute(f"DROP TABLE utopia.{name}")
            dropped.append(name)
    await conn.execute("DELETE FROM utopia.detections_default WHERE timestamp_detected < $1", cutoff)
    minute_cutoff = now - timedelta(days=settings.minute_rollup_retention_days)
    await conn.execute("DELETE FROM utopia.rollup_minute WHERE bucket < $1", minute_cutoff)
    await conn.execute("DELETE FROM utopia.rollup_item_minute WHERE bucket < $1", minute_cutoff)
    return dropped


async def maintain(
    conn: Conn, flavour: Flavour, settings: StorageSettings, *, now: datetime | None = None
) -> list[str]:
    """Periodic upkeep; returns what it did, for logs. TimescaleDB runs its own jobs."""
    if flavour == "timescaledb":
        return []
    now = now or datetime.now(UTC)
    done = [f"created partition {n}" for n in await ensure_partitions(conn, settings, now)]
    done += [f"dropped partition {n}" for n in await _drop_expired(conn, settings, now)]
    folded = await fold_rollups(conn)
    if folded:
        done.append(f"folded {folded} rollup increments")
    return done


async def refresh_rollups(conn: Conn, flavour: Flavour, start: datetime, end: datetime) -> None:
    """Make the rollups reflect every raw row in [start, end) (after late data or a replay)."""
    if flavour == "plain":
        await fold_rollups(conn)
        return
    lo = start.astimezone(UTC).replace(second=0, microsecond=0, minute=0)
    hi = end.astimezone(UTC).replace(second=0, microsecond=0, minute=0) + timedelta(hours=1)
    day_lo, day_hi = lo.replace(hour=0), hi.replace(hour=0) + timedelta(days=1)
    # Hierarchical aggregates: each after the one it reads.
    for view, a, b in (
        ("detections_minute", lo, hi),
        ("detections_hour", lo, hi),
        ("detections_item_minute", lo, hi),
        ("detections_item_hour", lo, hi),
        ("detections_item_day", day_lo, day_hi),
    ):
        await conn.execute(
            f"CALL refresh_continuous_aggregate('utopia.{view}', $1::timestamptz, $2::timestamptz)", a, b
        )


def _interval(days: int = 0, hours: int = 0) -> str:
    return f"INTERVAL '{days} days {hours} hours'"


async def _timescale_policies(conn: Conn, settings: StorageSettings) -> list[str]:
    s = settings
    late = _interval(hours=s.late_window_hours)
    enabled = await conn.fetchval(
        "SELECT compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = 'utopia' AND hypertable_name = 'detections'"
    )
    statements = [
        f"SELECT set_chunk_time_interval('utopia.detections', {_interval(days=s.partition_days)})",
        "SELECT remove_compression_policy('utopia.detections', true)",
        f"SELECT add_compression_policy('utopia.detections', {_interval(days=s.compress_after_days)})",
        "SELECT remove_retention_policy('utopia.detections', true)",
        f"SELECT add_retention_policy('utopia.detections', {_interval(days=s.retention_days)})",
        "SELECT remove_retention_policy('utopia.detections_minute', true)",
        f"SELECT add_retention_policy('utopia.detections_minute', {_interval(days=s.minute_rollup_retention_days)})",
    ]
    minute_start, hour_start = late, _interval(hours=s.late_window_hours + 2)
    day_start = _interval(days=3, hours=s.late_window_hours)
    for view, start, end, every in (
        ("detections_minute", minute_start, "INTERVAL '1 minute'", "INTERVAL '1 minute'"),
        ("detections_hour", hour_start, "INTERVAL '1 hour'", "INTERVAL '10 minutes'"),
        ("detections_item_minute", minute_start, "INTERVAL '1 minute'", "INTERVAL '1 minute'"),
        ("detections_item_hour", hour_start, "INTERVAL '1 hour'", "INTERVAL '10 minutes'"),
        ("detections_item_day", day_start, "INTERVAL '1 day'", "INTERVAL '1 hour'"),
    ):
        statements += [
            f"SELECT remove_continuous_aggregate_policy('utopia.{view}', true)",
            f"SELECT add_continuous_aggregate_policy('utopia.{view}', {start}, {end}, {every})",
        ]
    minute_retention = _interval(days=s.minute_rollup_retention_days)
    statements += [
        "SELECT remove_retention_policy('utopia.detections_item_minute', true)",
        f"SELECT add_retention_policy('utopia.detections_item_minute', {minute_retention})",
    ]
    if not enabled:
        statements.insert(
            1,
            "ALTER TABLE utopia.detections SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'geographical_location_oid', "
            "timescaledb.compress_orderby = 'timestamp_detected, detection_oid')",
        )
    async with conn.transaction():
        for statement in statements:
            await conn.execute(statement)
    return [
        f"chunks {s.partition_days} d, compress after {s.compress_after_days} d, raw retention {s.retention_days} d, "
        f"minute rollup retention {s.minute_rollup_retention_days} d, late window {s.late_window_hours} h"
    ]


async def apply_policies(
    conn: Conn, flavour: Flavour, settings: StorageSettings, *, now: datetime | None = None
) -> list[str]:
    """Apply the settings-dependent parts of the schema; idempotent."""
    if flavour == "timescaledb":
        return await _timescale_policies(conn, settings)
    return await maintain(conn, flavour, settings, now=now)
