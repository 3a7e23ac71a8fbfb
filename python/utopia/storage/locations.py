"""Dataset B: read a locations file, check every row, upsert all of it in one transaction.

Formats by file suffix: `.csv` (header row with the column names), `.jsonl` / `.ndjson` / `.json`
(one JSON object per line) and `.parquet` (needs pyarrow). Columns: `geographical_location_oid`
(int64 > 0) and `geographical_location` (1..500 characters); other columns are ignored. Any bad row
fails the whole file with every problem listed by line, and nothing is written. After the commit,
`NOTIFY utopia_locations` (payload: JSON with the counts) tells running ingest workers to reload.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

__all__ = [
    "NOTIFY_CHANNEL",
    "LoadReport",
    "LocationsFileError",
    "fetch_locations",
    "load_locations",
    "read_locations",
]

Conn = Any  # asyncpg.Connection
NOTIFY_CHANNEL = "utopia_locations"
OID, NAME = "geographical_location_oid", "geographical_location"
_MAX_OID = 2**63 - 1
_MAX_NAME = 500
_SHOWN_ERRORS = 20


class LocationsFileError(ValueError):
    """A locations file cannot be loaded; `errors` lists (line, problem) pairs."""

    def __init__(self, path: Path, errors: list[tuple[int, str]], unit: str = "line") -> None:
        self.path = path
        self.errors = errors
        shown = [f"  {unit} {line}: {problem}" for line, problem in errors[:_SHOWN_ERRORS]]
        if len(errors) > _SHOWN_ERRORS:
            shown.append(f"  ... and {len(errors) - _SHOWN_ERRORS} more")
        super().__init__(f"{path}: {len(errors)} bad row(s), nothing loaded:\n" + "\n".join(shown))


@dataclass(frozen=True, slots=True)
class LoadReport:
    rows: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated


def _check(oid: object, name: object, from_text: bool) -> tuple[int, str] | str:
    """The validated row, or what is wrong with it."""
    if from_text and isinstance(oid, str):
        try:
            oid = int(oid.strip())
        except ValueError:
            return f"{OID} is not an integer: {oid!r}"
    if isinstance(oid, bool) or not isinstance(oid, int):
        return f"{OID} must be an integer, got {type(oid).__name__}"
    if not 0 < oid <= _MAX_OID:
        return f"{OID} must be between 1 and {_MAX_OID}, got {oid}"
    if not isinstance(name, str):
        return f"{NAME} must be a string, got {type(name).__name__}"
    if not 1 <= len(name) <= _MAX_NAME:
        return f"{NAME} must be 1..{_MAX_NAME} characters, got {len(name)}"
    return oid, name


def _csv_rows(path: Path) -> Iterator[tuple[int, object, object] | tuple[int, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in (OID, NAME) if c not in (reader.fieldnames or [])]
        if missing:
            yield 1, f"header lacks column(s) {', '.join(missing)}"
            return
        for record in reader:
            if None in record:
                yield reader.line_num, "more fields than the header has"
                continue
            yield reader.line_num, record.get(OID), record.get(NAME)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, object, object] | tuple[int, str]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                yield number, f"not valid JSON: {exc}"
                continue
            if not isinstance(record, dict):
                yield number, "not a JSON object"
                continue
            if OID not in record or NAME not in record:
                yield number, f"missing {OID if OID not in record else NAME}"
                continue
            yield number, record[OID], record[NAME]


def _parquet_rows(path: Path) -> Iterator[tuple[int, object, object] | tuple[int, str]]:
    try:
        pq: Any = importlib.import_module("pyarrow.parquet")  # optional dependency, only for Parquet files
    except ImportError:
        yield 0, "reading Parquet needs pyarrow (pip install pyarrow)"
        return
    schema = pq.read_schema(path)
    missing = [c for c in (OID, NAME) if c not in schema.names]
    if missing:
        yield 0, f"lacks column(s) {', '.join(missing)}"
        return
    table = pq.read_table(path, columns=[OID, NAME])
    for number, (oid, name) in enumerate(
        zip(table.column(OID).to_pylist(), table.column(NAME).to_pylist(), strict=True), 1
    ):
        yield number, oid, name


def read_locations(path: Path) -> list[tuple[int, str]]:
    """Every row of `path`, validated; raises `LocationsFileError` listing all bad rows."""
    suffix = path.suffix.lower()
    unit = "line"
    rows: Iterable[tuple[int, object, object] | tuple[int, str]]
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(path)
    elif suffix == ".parquet":
        rows, unit = _parquet_rows(path), "row"
    else:
        raise LocationsFileError(path, [(0, f"unknown format {suffix!r}: use .csv, .jsonl or .parquet")])
    try:
        good, errors = _validate(rows, from_text=suffix == ".csv")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LocationsFileError(path, [(0, f"cannot read: {exc}")]) from None
    if errors:
        raise LocationsFileError(path, errors, unit)
    if not good:
        raise LocationsFileError(path, [(0, "no locations in the file")])
    return good


def _validate(
    rows: Iterable[tuple[int, object, object] | tuple[int, str]], *, from_text: bool
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    good: list[tuple[int, str]] = []
    errors: list[tuple[int, str]] = []
    first_seen: dict[int, tuple[int, str]] = {}
    for entry in rows:
        if len(entry) == 2:
            errors.append(entry)
            continue
        number, oid, name = entry
        checked = _check(oid, name, from_text)
        if isinstance(checked, str):
            errors.append((number, checked))
            continue
        seen = first_seen.get(checked[0])
        if seen is not None:
            if seen[1] != checked[1]:
                errors.append((number, f"{OID} {checked[0]} already given a different name on line {seen[0]}"))
            continue
        first_seen[checked[0]] = (number, checked[1])
        good.append(checked)
    return good, errors


_UPSERT_SQL = """
WITH up AS (
    INSERT INTO utopia.locations AS l (geographical_location_oid, geographical_location)
    SELECT geographical_location_oid, geographical_location FROM utopia_locations_in
    ON CONFLICT (geographical_location_oid) DO UPDATE
        SET geographical_location = EXCLUDED.geographical_location, updated_at = now()
        WHERE l.geographical_location IS DISTINCT FROM EXCLUDED.geographical_location
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM up
"""


async def load_locations(conn: Conn, rows: list[tuple[int, str]]) -> LoadReport:
    """Upsert `rows` in one transaction; running workers are notified once it commits."""
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE utopia_locations_in (geographical_location_oid bigint, geographical_location text) "
            "ON COMMIT DROP"
        )
        await conn.copy_records_to_table("utopia_locations_in", records=rows)
        result = await conn.fetchrow(_UPSERT_SQL)
        report = LoadReport(rows=len(rows), inserted=result["inserted"], updated=result["updated"])
        if report.inserted or report.updated:
            # NOTIFY is transactional: listeners hear it only after the commit.
            payload = json.dumps({"inserted": report.inserted, "updated": report.updated})
            await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
    return report


async def fetch_locations(conn: Conn) -> tuple[list[int], list[str]]:
    """All of Dataset B as columns, ready for `Core.set_locations`."""
    rows = await conn.fetch("SELECT geographical_location_oid, geographical_location FROM utopia.locations ORDER BY 1")
    return [r[0] for r in rows], [r[1] for r in rows]
