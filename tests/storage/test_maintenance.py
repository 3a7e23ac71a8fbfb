"""Plain flavour upkeep: partitions ahead, rows rescued from the default partition, retention."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.storage import data
from utopia.config import StorageSettings
from utopia.storage import maintain, queries, write_batch

pytestmark = pytest.mark.timeout(60)


async def _partition_counts(conn: Any) -> dict[str, int]:
    rows = await conn.fetch("SELECT tableoid::regclass::text AS part, count(*) FROM utopia.detections GROUP BY 1")
    return {r[0]: r[1] for r in rows}


async def test_rows_in_default_partition_move_when_their_partition_is_created(conn: Any) -> None:
    events = data.make_events(random.Random(1), 400, span=timedelta(hours=4), first_id=1)  # 2024-03-10/11
    await write_batch(conn, data.process(data.new_core(), events), None, flavour="plain")
    assert await _partition_counts(conn) == {"utopia.detections_default": 400}
    settings = StorageSettings(retention_days=10_000, minute_rollup_retention_days=10_000, partitions_ahead=1)
    done = await maintain(conn, "plain", settings, now=datetime(2024, 3, 10, 12, tzinfo=UTC))
    assert "created partition detections_p20240310_20240311" in done
    assert "created partition detections_p20240311_20240312" in done
    counts = await _partition_counts(conn)
    assert "utopia.detections_default" not in counts
    assert sum(counts.values()) == 400
    by_day = Counter(e.at.date().isoformat().replace("-", "") for e in events)
    for day, n in by_day.items():
        assert next(v for k, v in counts.items() if f"_p{day}_" in k) == n
    assert any("folded" in line for line in done)
    # Unique key still holds across the move.
    result = await write_batch(conn, data.process(data.new_core(), events[:10]), None, flavour="plain")
    assert result.stored == 0


async def test_retention_drops_raw_partitions_but_keeps_hour_rollups(conn: Any) -> None:
    settings = StorageSettings(
        retention_days=3, minute_rollup_retention_days=3, partitions_ahead=1, late_window_hours=1
    )
    old_day = datetime(2024, 3, 1, tzinfo=UTC)
    await maintain(conn, "plain", settings, now=old_day)
    events = data.make_events(random.Random(2), 200, start=old_day, span=timedelta(hours=3), first_id=1)
    await write_batch(conn, data.process(data.new_core(), events), None, flavour="plain")
    await maintain(conn, "plain", settings, now=old_day)  # folds
    before = await queries.top_items(conn, 10, old_day, old_day + timedelta(hours=3))
    done = await maintain(conn, "plain", settings, now=old_day + timedelta(days=10))
    assert "dropped partition detections_p20240301_20240302" in done
    assert await conn.fetchval("SELECT count(*) FROM utopia.detections") == 0
    assert await conn.fetchval("SELECT count(*) FROM utopia.rollup_minute") == 0
    after = await queries.top_items(conn, 10, old_day, old_day + timedelta(hours=3))
    assert after == before  # whole hours come from the hour rollup, which outlives the raw rows
    assert sum(r.count for r in after) == 200
