"""What the dashboard knows, built from REST answers and SSE events. No Textual here, so it is easy to test."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

__all__ = ["RANGES", "LiveModel", "Ownership", "Partition", "TimeRange"]


@dataclass(frozen=True)
class TimeRange:
    name: str
    label: str
    span: timedelta
    bucket: str  # of the Location chart


RANGES = (
    TimeRange("live", "live (15 min)", timedelta(minutes=15), "minute"),
    TimeRange("hour", "last hour", timedelta(hours=1), "minute"),
    TimeRange("day", "last day", timedelta(days=1), "hour"),
)
TOTALS = ("received", "stored", "duplicates", "rejected", "unmatched")


@dataclass
class RejectReason:
    count: int = 0
    last_seen: float = 0.0
    example: str = ""


@dataclass(frozen=True)
class Partition:
    """One partition of the DETECTIONS stream: its consumer's lag and the ingest worker holding its lease."""

    partition: int
    consumer: str
    owner: str | None  # None: nobody holds the lease, a takeover is due
    pending: int  # not yet delivered
    ack_pending: int  # delivered, not yet acknowledged
    acked_seq: int


@dataclass(frozen=True)
class Ownership:
    """Who owns which partition, from the `partitions` of the live stats (empty: not known)."""

    partitions: tuple[Partition, ...] = ()

    @property
    def workers(self) -> dict[str, list[int]]:
        """The workers alive (the distinct owners), each with its partitions, by worker id."""
        out: dict[str, list[int]] = {}
        for p in sorted(self.partitions, key=lambda p: (p.owner or "", p.partition)):
            if p.owner is not None:
                out.setdefault(p.owner, []).append(p.partition)
        return out

    @property
    def unowned(self) -> list[int]:
        """The partitions nobody owns: their takeover is due."""
        return [p.partition for p in self.partitions if p.owner is None]

    @property
    def pending(self) -> int:
        return sum(p.pending for p in self.partitions)

    @property
    def ack_pending(self) -> int:
        return sum(p.ack_pending for p in self.partitions)


def _partition(row: Any) -> Partition | None:
    if not isinstance(row, dict):
        return None
    try:
        owner = row.get("owner")
        return Partition(
            partition=int(row["partition"]),
            consumer=str(row.get("consumer") or ""),
            owner=None if owner is None else str(owner),
            pending=int(row.get("pending") or 0),
            ack_pending=int(row.get("ack_pending") or 0),
            acked_seq=int(row.get("acked_seq") or 0),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class LiveModel:
    history: int = 300  # seconds of events/s kept for the sparkline
    stats: dict[str, Any] = field(default_factory=dict)
    stored: dict[str, Any] = field(default_factory=dict)
    rates: deque[float] = field(default_factory=deque)
    names: dict[int, str] = field(default_factory=dict)
    # Counts per (location, item): a REST baseline plus the live increments since it was taken.
    items: Counter[tuple[int, str]] = field(default_factory=Counter)
    # Totals seen on the stream by this dashboard (counts events), since it connected.
    seen: Counter[str] = field(default_factory=Counter)
    rejects: dict[str, RejectReason] = field(default_factory=dict)
    lagged: int = 0
    updated: float = 0.0

    def __post_init__(self) -> None:
        self.rates = deque(self.rates, maxlen=self.history)

    # -- inputs --------------------------------------------------------------------------------

    def apply(self, name: str, data: Any) -> None:
        """One SSE event."""
        self.updated = time.monotonic()
        if name == "stats" and isinstance(data, dict):
            self.stats = data
            self.rates.append(float(data.get("received_per_s") or 0.0))
        elif name == "counts" and isinstance(data, dict):
            self.apply_counts(data)
        elif name == "rejects" and isinstance(data, list):
            self.apply_rejects(data)
        elif name == "lagged" and isinstance(data, dict):
            self.lagged += int(data.get("dropped", 0))

    def apply_counts(self, data: dict[str, Any]) -> None:
        for key in TOTALS:
            self.seen[key] += int(data.get(key) or 0)
        counts = data.get("counts") or {}
        locations = counts.get("geographical_location_oid") or []
        names = counts.get("item_name") or []
        values = counts.get("count") or []
        for location, item, count in zip(locations, names, values, strict=False):
            self.items[(int(location), str(item))] += int(count)

    def apply_rejects(self, rejects: list[Any]) -> None:
        now = time.time()
        for reject in rejects:
            if not isinstance(reject, dict):
                continue
            reason = str(reject.get("code") or reject.get("reason") or "unknown")
            entry = self.rejects.setdefault(reason, RejectReason())
            entry.count += 1
            entry.last_seen = now
            entry.example = str(reject.get("reason") or "")

    def set_locations(self, rows: list[dict[str, Any]]) -> None:
        self.names = {int(r["geographical_location_oid"]): str(r["geographical_location"]) for r in rows}

    def set_baseline(self, top: list[dict[str, Any]]) -> None:
        """The top items from REST replace the live counts (a catch-up after a reconnect or a range change)."""
        self.items = Counter()
        for row in top:
            oid = int(row["geographical_location_oid"])
            self.items[(oid, str(row["item_name"]))] = int(row["count"])
            if row.get("geographical_location"):
                self.names.setdefault(oid, str(row["geographical_location"]))

    def set_stats(self, body: dict[str, Any]) -> None:
        """`GET /stats`: live stats and the stored totals."""
        self.stats = body.get("live") or self.stats
        self.stored = body.get("stored") or {}
        self.seen = Counter()

    # -- views ---------------------------------------------------------------------------------

    def top(self, n: int) -> list[tuple[int, str, int, str, int]]:
        """(location oid, location name, rank, item, count) rows: the top n items of each location, ties by name."""
        per: dict[int, list[tuple[str, int]]] = {}
        for (location, item), count in self.items.items():
            per.setdefault(location, []).append((item, count))
        rows: list[tuple[int, str, int, str, int]] = []
        for location in sorted(per, key=lambda oid: self.names.get(oid, f"#{oid}")):
            ranked = sorted(per[location], key=lambda pair: (-pair[1], pair[0]))[:n]
            name = self.names.get(location, f"#{location} (unmatched)")
            rows.extend((location, name, rank, item, count) for rank, (item, count) in enumerate(ranked, 1))
        return rows

    def total(self, name: str) -> int:
        """Stored totals (from /stats) plus what the stream reported since; falls back to the stream."""
        base = self.stored.get(name)
        if base is None:
            return int(self.stats.get(name) or 0)
        return int(base) + self.seen[name]

    def ownership(self) -> Ownership:
        """The partitions of the latest stats, by number; rows the dashboard cannot read are left out."""
        rows = self.stats.get("partitions")
        parsed = [_partition(row) for row in rows] if isinstance(rows, list) else []
        return Ownership(tuple(sorted((p for p in parsed if p is not None), key=lambda p: p.partition)))

    def reasons(self) -> list[tuple[str, RejectReason]]:
        return sorted(self.rejects.items(), key=lambda pair: (-pair[1].count, pair[0]))
