"""Splitting a time range [start, end) into the parts each source can answer exactly.

Whole hours come from the hour rollup, whole minutes from the minute rollup, and the ragged
sub-minute edges from raw rows, so an analytics query reads few rows yet counts exactly what lies
in [start, end). All buckets are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["Segments", "ceil_to", "floor_to", "split_range", "to_utc"]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (raw_a, raw_b, minute_a, minute_b, hour): each a [lo, hi) pair; an empty part has lo == hi.
Segments = tuple[datetime, datetime, datetime, datetime, datetime, datetime, datetime, datetime, datetime, datetime]


def to_utc(value: datetime, name: str = "time") -> datetime:
    """An aware datetime in UTC; a naive one is refused (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone (e.g. 2024-05-01T12:00:00Z)")
    return value.astimezone(UTC)


def floor_to(value: datetime, step: timedelta) -> datetime:
    return _EPOCH + (value - _EPOCH) // step * step


def ceil_to(value: datetime, step: timedelta) -> datetime:
    floored = floor_to(value, step)
    return floored if floored == value else floored + step


def split_range(start: datetime, end: datetime, *, use_hours: bool = True) -> Segments:
    """The raw / minute / hour parts of [start, end); their union is exactly the range."""
    start, end = to_utc(start, "from"), to_utc(end, "to")
    if end <= start:
        return (start, start, start, start, start, start, start, start, start, start)  # every part empty
    m1, m2 = ceil_to(start, MINUTE), floor_to(end, MINUTE)
    if m1 >= m2:
        return (start, end, end, end, end, end, end, end, end, end)
    if use_hours:
        h1, h2 = ceil_to(start, HOUR), floor_to(end, HOUR)
        if h1 < h2:
            return (start, m1, m2, end, m1, h1, h2, m2, h1, h2)
    return (start, m1, m2, end, m1, m2, m2, m2, m2, m2)
