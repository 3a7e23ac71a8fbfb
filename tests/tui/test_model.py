"""The live model and the chart helpers, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from utopia_tui.client import ApiClient
from utopia_tui.model import LiveModel, Ownership, Partition
from utopia_tui.screens.cameras import ago, ordered
from utopia_tui.screens.ingest import summary
from utopia_tui.screens.location import series
from utopia_tui.screens.overview import lag_variants
from utopia_tui.widgets import bars, counted, human


def test_counts_add_to_the_baseline_and_rank_ties_by_name() -> None:
    model = LiveModel()
    model.set_locations([{"geographical_location_oid": 1, "geographical_location": "Old Town", "count": 0}])
    model.set_baseline(
        [{"geographical_location_oid": 1, "geographical_location": "Old Town", "item_name": "car", "count": 3}]
    )
    model.set_stats({"live": {"received_per_s": 1.0}, "stored": {"stored": 10, "rejected": 2}})
    counts = {
        "received": 5,
        "stored": 4,
        "duplicates": 1,
        "rejected": 0,
        "unmatched": 1,
        "counts": {
            "minute_ms": [0, 0, 0],
            "geographical_location_oid": [1, 1, 4],
            "video_camera_oid": [11, 11, 41],
            "item_name": ["bus", "bus", "dog"],
            "count": [2, 1, 1],
        },
    }
    model.apply("counts", counts)
    assert model.top(5) == [
        (4, "#4 (unmatched)", 1, "dog", 1),
        (1, "Old Town", 1, "bus", 3),
        (1, "Old Town", 2, "car", 3),
    ]
    assert model.total("stored") == 14
    assert model.total("rejected") == 2
    model.apply("stats", {"received_per_s": 7.5})
    assert list(model.rates) == [7.5]
    model.apply("lagged", {"dropped": 3})
    assert model.lagged == 3


def test_reject_reasons_are_counted_by_code() -> None:
    model = LiveModel()
    model.apply("rejects", [{"code": "missing_field", "reason": "missing item_name"}, {"code": "missing_field"}])
    model.apply("rejects", [{"reason": "undecodable"}])
    assert [(r, e.count) for r, e in model.reasons()] == [("missing_field", 2), ("undecodable", 1)]


def _partition(n: int, owner: str | None, pending: int = 0, ack: int = 0) -> dict[str, object]:
    return {
        "partition": n,
        "consumer": f"ingest-{n}",
        "owner": owner,
        "pending": pending,
        "ack_pending": ack,
        "acked_seq": 7,
    }


def test_ownership_of_the_partitions() -> None:
    model = LiveModel()
    assert model.ownership() == Ownership()
    rows = [_partition(3, None, 1200), _partition(1, "w-b", 3, 4), _partition(0, "w-a", 0, 36), _partition(2, "w-a")]
    model.apply("stats", {"pending": 1203, "ack_pending": 40, "partitions": [*rows, "junk", {"partition": "x"}]})
    ownership = model.ownership()
    assert ownership.partitions[0] == Partition(0, "ingest-0", "w-a", 0, 36, 7)
    assert [p.partition for p in ownership.partitions] == [0, 1, 2, 3]
    assert ownership.workers == {"w-a": [0, 2], "w-b": [1]}
    assert ownership.unowned == [3]
    assert (ownership.pending, ownership.ack_pending) == (1203, 40)
    assert summary(ownership).splitlines() == [
        "[b]4 partitions[/b] · [b]2 workers[/b] alive · lag [b]1,203[/b] pending · [b]40[/b] unacked",
        "[b $warning]takeover pending: partition 3 has no owner[/]",
        "w-a: partitions 0, 2 · w-b: partition 1",
    ]
    assert "every partition has an owner" in summary(Ownership(ownership.partitions[:3]))
    assert summary(Ownership()).startswith("No partitions known yet.")


def test_the_lag_line_shortens_to_fit() -> None:
    stats = {"pending": 1234, "ack_pending": 40, "since_last_commit_s": 0.25, "notify_delay_ms": 4.0}
    owned = Ownership((Partition(0, "ingest-0", "w-a", 0, 0, 1), Partition(1, "ingest-1", "w-b", 0, 0, 1)))
    assert lag_variants(stats, owned) == [
        "lag 1,234 pending · 40 unacked (2 partitions, 2 workers) │ last commit 0.2s ago · notify 4 ms",
        "lag 1,234 pending · 40 unacked (2 partitions, 2 workers) │ last commit 0.2s ago",
        "lag 1,234 pending · 40 unacked (2 partitions, 2 workers) │ commit 0.2s ago",
        "lag 1,234 · 40 unacked (2 partitions, 2 workers) │ commit 0.2s ago",
        "lag 1,234 pending · 40 unacked (2 partitions, 2 workers)",
    ]
    orphan = Ownership((Partition(0, "ingest-0", None, 0, 0, 1),))
    assert (
        lag_variants({}, orphan)[0] == "lag unknown (1 partition, 0 workers, [b $warning]1 unowned[/]) │ no commit yet"
    )
    # An API from before partitioned ingest: no hint.
    assert lag_variants({"pending": 3, "ack_pending": 0}, Ownership())[-1] == "lag 3 pending · 0 unacked"


def test_series_lays_counts_on_a_full_axis() -> None:
    now = datetime(2026, 1, 1, 12, 30, 20, tzinfo=UTC)
    rows = [
        {"bucket": "2026-01-01T12:30:00Z", "item_name": "car", "count": 2},
        {"bucket": "2026-01-01T12:28:00+00:00", "item_name": "car", "count": 1},
        {"bucket": "2026-01-01T10:00:00Z", "item_name": "bus", "count": 5},  # out of range
    ]
    assert series(rows, "minute", timedelta(minutes=5), now) == {"car": [0.0, 0.0, 1.0, 0.0, 2.0]}
    assert series(rows, "hour", timedelta(hours=3), now) == {"bus": [5.0, 0.0, 0.0], "car": [0.0, 0.0, 3.0]}


def test_helpers() -> None:
    assert bars([0, 1, 2, 4], 3) == "▂▄█"
    assert bars([0, 0], 3) == "▁▁"
    assert bars([1, 2], 5) == "▄▄██"
    assert human(12345) == "12.3k"
    assert human(None) == "-"
    assert human(2.5) == "2.5"
    assert (counted(1, "worker"), counted(0, "worker")) == ("1 worker", "0 workers")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert ago("2025-12-31T23:59:30Z", now) == "30s ago"
    assert ago(None, now) == "never"
    cams = [
        {"silent": False, "geographical_location_oid": 1, "video_camera_oid": 1},
        {"silent": True, "geographical_location_oid": 2, "video_camera_oid": 5},
    ]
    assert [c["video_camera_oid"] for c in ordered(cams)] == [5, 1]
    assert ApiClient("http://h:1/api/v1/").base_url == "http://h:1"
