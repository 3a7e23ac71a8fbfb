"""The durable outbox: SQLite in WAL mode holding every event that JetStream has not acknowledged.

Events arrive as encoded bodies (see `events.BodyCodec`) and are first committed as *open* rows of
their location. A location's open rows are *sealed* into one batch when they reach the batch size,
the byte limit or the linger time: the batch gets the next sequence number of this outbox and the
id `<agent_id>.<seq>`, which is its `Nats-Msg-Id`. A sealed batch never changes, so a re-send
carries the same id and the same bytes and JetStream's duplicate window drops it. The sequence is
persisted (not derived from the rows still present), so ids are never reused, even after the
outbox drained; the agent id is random per outbox file, so two outboxes never collide either.

This class is synchronous and not thread-safe: `async_outbox.AsyncOutbox` runs it on one thread.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from utopia_edge.contract import detections_subject
from utopia_edge.events import BodyCodec
from utopia_edge.settings import Fsync, WireFormat

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS open_events (
    id INTEGER PRIMARY KEY,
    location INTEGER NOT NULL,
    format TEXT NOT NULL,
    events INTEGER NOT NULL,
    created REAL NOT NULL,
    body BLOB NOT NULL
);
-- Small columns first: SQLite reads a row's columns in order, and the payload spills to overflow pages.
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    content_type TEXT NOT NULL,
    events INTEGER NOT NULL,
    created REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_created ON batches (created);
"""


class OutboxError(RuntimeError):
    """The outbox file cannot be used (wrong schema, unreadable, disk full...)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A sealed batch, ready to publish as one NATS message."""

    seq: int
    batch_id: str
    subject: str
    content_type: str
    events: int
    created: float
    payload: bytes


@dataclass(slots=True)
class _Open:
    """The unsealed events of one location (mirrors its `open_events` rows)."""

    events: int = 0
    nbytes: int = 0
    created: float = 0.0
    bodies: list[bytes] = field(default_factory=list)


class Outbox:
    def __init__(
        self,
        path: str | Path,
        *,
        fmt: WireFormat = "msgpack",
        fsync: Fsync = "normal",
        batch_size: int = 500,
        batch_max_bytes: int = 512 * 1024,
        linger_s: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._codec = BodyCodec(fmt)
        self._batch_size = batch_size
        self._batch_max_bytes = batch_max_bytes
        self._linger_s = linger_s
        self._clock = clock
        self._open: dict[int, _Open] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: the connection is opened on one thread and then used by the
            # outbox's single worker thread; it is never used by two threads at once.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={fsync.upper()}")
            self._db.executescript(_SCHEMA)
            with self._tx():
                self.agent_id = self._meta("agent_id") or self._set_meta("agent_id", uuid.uuid4().hex)
                version = self._meta("schema_version") or self._set_meta("schema_version", SCHEMA_VERSION)
                self._next_seq = int(self._meta("next_seq") or self._set_meta("next_seq", "1"))
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        if version != SCHEMA_VERSION:
            raise OutboxError(f"outbox {self.path} has schema {version}, this agent knows {SCHEMA_VERSION}")
        self.sealed_batches = self.sealed_events = self._sealed_bytes = 0
        self._load_state()
        self._seal_leftovers()

    # --- state ----------------------------------------------------------------------------------

    @property
    def backlog_events(self) -> int:
        """Events not yet acknowledged: open and sealed."""
        return self.sealed_events + self.open_events

    @property
    def backlog_bytes(self) -> int:
        return self._sealed_bytes + self._open_bytes

    def oldest_created(self) -> float | None:
        """Append time of the oldest unacknowledged event, or None when the outbox is empty."""
        (oldest,) = self._db.execute("SELECT MIN(created) FROM batches").fetchone()
        candidates = [o.created for o in self._open.values()]
        if oldest is not None:
            candidates.append(oldest)
        return min(candidates, default=None)

    # --- writing --------------------------------------------------------------------------------

    def append(self, groups: Sequence[tuple[int, int, bytes]], cursor: tuple[str, int] | None = None) -> int:
        """Commit `(location, events, body)` groups (and a source cursor) at once; returns batches sealed."""
        now = self._clock()
        sealed = 0
        with self._tx():
            for location, events, body in groups:
                state = self._open.get(location)
                if state is not None and (
                    state.events + events > self._batch_size or state.nbytes + len(body) > self._batch_max_bytes
                ):
                    self._seal(location)
                    sealed += 1
                    state = None
                if state is None:
                    state = self._open[location] = _Open(created=now)
                self._db.execute(
                    "INSERT INTO open_events (location, format, events, created, body) VALUES (?, ?, ?, ?, ?)",
                    (location, self._codec.format, events, now, body),
                )
                state.events += events
                state.nbytes += len(body)
                state.bodies.append(body)
                self.open_events += events
                self._open_bytes += len(body)
                if state.events >= self._batch_size or state.nbytes >= self._batch_max_bytes:
                    self._seal(location)
                    sealed += 1
            if cursor is not None:
                self._set_meta(f"cursor:{cursor[0]}", str(cursor[1]))
        return sealed

    def seal_due(self) -> int:
        """Seal the locations whose oldest open event waited `linger_s`; returns batches sealed."""
        deadline = self._clock() - self._linger_s
        due = [location for location, state in self._open.items() if state.created <= deadline]
        if due:
            with self._tx():
                for location in due:
                    self._seal(location)
        return len(due)

    def seal_all(self) -> int:
        due = list(self._open)
        if due:
            with self._tx():
                for location in due:
                    self._seal(location)
        return len(due)

    def next_due(self) -> float | None:
        """When the next linger deadline falls (clock time), or None with nothing open."""
        return min((s.created for s in self._open.values()), default=None) if self._open else None

    def _seal(self, location: int, state: _Open | None = None, codec: BodyCodec | None = None) -> None:
        state = state or self._open.pop(location)
        codec = codec or self._codec
        seq = self._next_seq
        payload = codec.merge(state.bodies, state.events)
        self._db.execute(
            "INSERT INTO batches (seq, batch_id, subject, content_type, events, created, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, f"{self.agent_id}.{seq}", detections_subject(location), codec.content_type, state.events,
             state.created, payload),
        )  # fmt: skip
        self._db.execute("DELETE FROM open_events WHERE location = ? AND format = ?", (location, codec.format))
        self._next_seq = seq + 1
        self._set_meta("next_seq", str(self._next_seq))
        self.sealed_batches += 1
        self.sealed_events += state.events
        self._sealed_bytes += len(payload)
        self.open_events -= state.events
        self._open_bytes -= state.nbytes

    def _seal_leftovers(self) -> None:
        """Open rows left by a previous run are sealed at once, each with the format it was written in."""
        rows = self._db.execute("SELECT location, format, events, created, body FROM open_events ORDER BY id")
        groups: dict[tuple[int, WireFormat], _Open] = {}
        self._open = {}
        self.open_events = self._open_bytes = 0
        for location, fmt, events, created, body in rows.fetchall():
            state = groups.setdefault((location, fmt), _Open(created=created))
            state.events += events
            state.nbytes += len(body)
            state.bodies.append(body)
            self.open_events += events
            self._open_bytes += len(body)
        if groups:
            with self._tx():
                for (location, fmt), state in groups.items():
                    self._seal(location, state, BodyCodec(fmt))

    # --- reading and acknowledging ----------------------------------------------------------------

    def peek(self, after_seq: int, limit: int) -> list[Batch]:
        """Sealed batches with seq > after_seq, oldest first."""
        rows = self._db.execute(
            "SELECT seq, batch_id, subject, content_type, events, created, payload FROM batches"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [Batch(*row) for row in rows.fetchall()]

    def delete(self, batches: Sequence[Batch]) -> None:
        """Forget acknowledged batches (in one transaction)."""
        if not batches:
            return
        with self._tx():
            for batch in batches:
                if self._db.execute("DELETE FROM batches WHERE seq = ?", (batch.seq,)).rowcount:
                    self.sealed_batches -= 1
                    self.sealed_events -= batch.events
                    self._sealed_bytes -= len(batch.payload)

    # --- source cursors -------------------------------------------------------------------------

    def cursor(self, key: str) -> int | None:
        """How many records of source `key` are already in the outbox (committed with them)."""
        value = self._meta(f"cursor:{key}")
        return None if value is None else int(value)

    def clear_cursor(self, key: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM meta WHERE key = ?", (f"cursor:{key}",))

    def close(self) -> None:
        self._db.close()

    # --- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            # The in-memory mirror may be half-updated: rebuild it from what is committed.
            self._load_state()
            raise

    def _load_state(self) -> None:
        self._next_seq = int(self._meta("next_seq") or "1")
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(events), 0), COALESCE(SUM(LENGTH(payload)), 0) FROM batches"
        )
        self.sealed_batches, self.sealed_events, self._sealed_bytes = row.fetchone()
        self._open = {}
        self.open_events = self._open_bytes = 0
        rows = self._db.execute(
            "SELECT location, events, created, body FROM open_events WHERE format = ? ORDER BY id",
            (self._codec.format,),
        )
        for location, events, created, body in rows.fetchall():
            state = self._open.setdefault(location, _Open(created=created))
            state.events += events
            state.nbytes += len(body)
            state.bodies.append(body)
            self.open_events += events
            self._open_bytes += len(body)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> str:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        return value
