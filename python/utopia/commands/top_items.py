"""`utopia top-items`: the classic report, top X items per location over a time range."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from utopia.config import Settings
from utopia.storage import queries
from utopia.storage.connect import DatabaseUnavailable, add_database_flag, connect, fail, settings_from_args
from utopia.storage.models import TopItem

_COLUMNS = ("geographical_location", "item_rank", "item_name", "count")


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return value


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "top-items", help="top X items per location (ranked by count, ties by item_name)"
    )
    parser.add_argument("--x", type=_positive, required=True, metavar="N", help="items per location")
    parser.add_argument("--from", dest="start", type=_time, metavar="T", help="ISO 8601, inclusive (default: to - 24h)")
    parser.add_argument("--to", dest="end", type=_time, metavar="T", help="ISO 8601, exclusive (default: now)")
    parser.add_argument("--location", type=_positive, metavar="OID", help="only this geographical_location_oid")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    add_database_flag(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    end = args.end or datetime.now(UTC)
    start = args.start or end - timedelta(hours=24)
    if start >= end:
        return fail("--from must be before --to")
    return asyncio.run(_report(settings, args.x, start, end, location=args.location, fmt=args.format))


async def _report(settings: Settings, x: int, start: datetime, end: datetime, *, location: int | None, fmt: str) -> int:
    try:
        conn = await connect(settings)
    except DatabaseUnavailable as exc:
        return fail(str(exc))
    try:
        rows = await queries.top_items(conn, x, start, end, location=location)
    except asyncpg.UndefinedTableError:
        return fail("the schema is missing: run `utopia migrate` first")
    finally:
        await conn.close()
    sys.stdout.write(render(rows, fmt))
    return 0


def _name(row: TopItem) -> str:
    return row.geographical_location or f"(unknown location {row.geographical_location_oid})"


def render(rows: list[TopItem], fmt: str) -> str:
    """The report as text: `table`, `csv` or `json` (a list of row objects)."""
    if fmt == "json":
        return msgspec.json.encode(rows).decode() + "\n"
    cells = [(_name(r), str(r.item_rank), r.item_name, str(r.count)) for r in rows]
    if fmt == "csv":
        out = _Lines()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_COLUMNS)
        writer.writerows(cells)
        return "".join(out.lines)
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)
