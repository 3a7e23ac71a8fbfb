"""Splitting a time range [start, end) into the parts each source can answer exactly.

Whole days come from the day rollup, whole hours from the hour rollup, whole minutes from the
minute rollup and the ragged sub-minute edges from raw rows, so an analytics query reads few rows
yet counts exactly what lies in [start, end). All buckets are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["Segments", "ceil_to", "floor_to", "split_range", "to_utc"]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEPS = {"raw": (), "minute": (MINUTE,), "hour": (MINUTE, HOUR), "day": (MINUTE, HOUR, DAY)}

# Fourteen bounds: raw [a, b) [c, d), minute [a, b) [c, d), hour [a, b) [c, d), day [a, b).
# An unused part has equal bounds, so it matches nothing.
Segments = list[datetime]


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


def split_range(start: datetime, end: datetime, coarsest: str = "day") -> Segments:
    """The parts of [start, end) for raw rows and each rollup level up to `coarsest`.

    Each level takes the ragged pieces at both ends that the next coarser level cannot hold; the
    coarsest usable level takes the middle whole. Their union is exactly [start, end).
    """
    start, end = to_utc(start, "from"), to_utc(end, "to")
    end = max(start, end)
    parts: list[datetime] = []
    lo, hi = start, end
    for step in _STEPS[coarsest]:
        a, b = ceil_to(start, step), floor_to(end, step)
        if a >= b:
            break
        parts += [lo, a, b, hi]
        lo, hi = a, b
    parts += [lo, hi, hi, hi]  # the coarsest usable level: the middle, whole
    parts += [end] * (16 - len(parts))
    return parts[:14]
