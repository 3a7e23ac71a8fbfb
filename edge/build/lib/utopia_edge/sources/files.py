"""Dataset A from a file: CSV (with a header), JSON lines, or Parquet (when pyarrow is installed).

Bad rows are reported with their line (CSV, JSON lines) or row (Parquet) number and skipped; the
rest is published. The source is resumable: its cursor is the number of records consumed, and its
key names the file by path, size and modification time, so a changed file starts over.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from utopia_edge.contract import EVENT_FIELDS
from utopia_edge.events import Event, describe_error
from utopia_edge.sources import Chunk, Pacer, RejectReporter

FileFormat = Literal["csv", "jsonl", "parquet"]
# A record is (position for reports, the event or why it is bad).
Record = tuple[str, Event | str]

_EXTENSIONS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

_decode_json_event = msgspec.json.Decoder(Event).decode


class FileSourceError(ValueError):
    """The file as a whole cannot be read (missing, unknown format, no header, no pyarrow)."""


def detect_format(path: Path) -> FileFormat:
    try:
        return _EXTENSIONS[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(_EXTENSIONS))
        raise FileSourceError(
            f"{path}: cannot tell the format from {path.suffix!r} ({known}); give --file-format"
        ) from None


def _validated(value: dict[str, Any]) -> Event | str:
    try:
        return msgspec.convert(value, Event, strict=False)
    except msgspec.ValidationError as exc:
        return describe_error(exc)


def read_jsonl(lines: Iterator[bytes], *, first: int = 1) -> Iterator[Record]:
    for number, line in enumerate(lines, first):
        if not line.strip():
            continue  # blank lines (a trailing one, say) are not records
        try:
            yield f"line {number}", _decode_json_event(line)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            yield f"line {number}", describe_error(exc)


def read_csv(path: Path) -> Iterator[Record]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [name for name in EVENT_FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise FileSourceError(f"{path}: the CSV header lacks column(s) {', '.join(missing)}")
        for row in reader:
            # Empty cells are missing values, not empty strings (an empty item_name is still caught).
            values = {name: row[name] for name in EVENT_FIELDS if row.get(name) not in (None, "")}
            if row.get("item_name") == "":
                values["item_name"] = ""
            yield f"line {reader.line_num}", _validated(values)


def read_parquet(path: Path, batch_rows: int = 10_000) -> Iterator[Record]:
    try:
        # Optional dependency (the `parquet` extra), imported only when a Parquet file is read.
        pq: Any = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise FileSourceError(f"{path}: reading Parquet needs pyarrow: pip install 'utopia-edge[parquet]'") from None
    parquet = pq.ParquetFile(path)
    columns = [name for name in EVENT_FIELDS if name in parquet.schema_arrow.names]
    number = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        for row in batch.to_pylist():
            number += 1
            stamp = row.get("timestamp_detected")
            if isinstance(stamp, dt.datetime):  # an Arrow timestamp column rather than epoch ms
                row["timestamp_detected"] = int(stamp.timestamp() * 1000)
            yield f"row {number}", _validated({k: v for k, v in row.items() if v is not None})


def _jsonl_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from fh


class FileSource:
    finite = True

    def __init__(
        self, path: str | Path, *, fmt: FileFormat | None = None, rate: float | None = None, chunk_size: int = 2000
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileSourceError(f"{self.path}: no such file")
        self.format: FileFormat = fmt or detect_format(self.path)
        self._rate = rate
        self._chunk_size = chunk_size
        self._reporter = RejectReporter(str(self.path))
        stat = os.stat(self.path)
        self._key = f"file:{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

    @property
    def name(self) -> str:
        return f"file {self.path}"

    @property
    def resume_key(self) -> str:
        return self._key

    @property
    def rejected(self) -> int:
        return self._reporter.count

    def records(self) -> Iterator[Record]:
        if self.format == "csv":
            return read_csv(self.path)
        if self.format == "parquet":
            return read_parquet(self.path)
        return read_jsonl(_jsonl_lines(self.path))

    async def chunks(self, start: int = 0) -> AsyncIterator[Chunk]:
        pacer = Pacer(self._rate)
        consumed = emitted = 0
        chunk = Chunk()
        # Fewer events per chunk when paced, so a slow rate still flows smoothly.
        size = self._chunk_size if self._rate is None else max(1, min(self._chunk_size, int(self._rate / 50)))
        for position, record in self.records():
            consumed += 1
            if consumed <= start:
                continue  # already in the outbox from an interrupted run
            if isinstance(record, str):
                self._reporter(position, record)
            else:
                chunk.add(record)
            if chunk.events >= size or consumed % (size * 4) == 0:
                chunk.cursor = consumed
                emitted += chunk.events
                yield chunk
                chunk = Chunk()
                await pacer.wait(emitted)
        chunk.cursor = consumed
        yield chunk
        self._reporter.summary()
