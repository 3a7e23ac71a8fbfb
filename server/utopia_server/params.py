"""Query-parameter checks shared by the routes: a bad value is a 400 that names the parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar.exceptions import ValidationException

__all__ = ["MAX_RANGE", "bad", "time_range"]

MAX_RANGE = timedelta(days=366)


def bad(param: str, message: str) -> ValidationException:
    return ValidationException(
        detail=f"invalid query parameter '{param}': {message}",
        extra=[{"key": param, "source": "query", "message": message}],
    )


def parse_time(param: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise bad(param, f"not an ISO 8601 time: {text!r} (e.g. 2026-05-01T12:00:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_range(
    start: str | None, end: str | None, *, default: timedelta = timedelta(hours=24), limit: timedelta = MAX_RANGE
) -> tuple[datetime, datetime]:
    """[from, to): `to` defaults to now, `from` to `to - default`; naive times are UTC."""
    to = parse_time("to", end) if end else datetime.now(UTC)
    frm = parse_time("from", start) if start else to - default
    if frm >= to:
        raise bad("from", "must be before 'to'")
    if to - frm > limit:
        raise bad("from", f"the range may span at most {limit.days} days")
    return frm, to
