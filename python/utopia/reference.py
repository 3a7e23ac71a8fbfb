"""The semantics of the Rust core (`utopia._core.Core`), stated plainly in Python.

Property tests hold the core against this module and the benchmark uses it as the baseline. It
favours obviousness over speed: one event at a time, dicts and lists.

Dedup rule: ids are remembered per *generation* of arrival time: `span = max(horizon // 4, 1)`
milliseconds, `generation(t) = t - t % span`. An id accepted by a batch processed at `t` (or
warmed as stored at `t`) is a duplicate until `generation(t) + span + horizon`, so it is kept for
at least the horizon and at most one span longer. Aborting a batch forgets the ids it accepted
in its generation, so their redelivery is accepted again; committing it keeps them.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from utopia import copy_format
from utopia.copy_format import Row

FIELDS = ("geographical_location_oid", "video_camera_oid", "detection_oid", "item_name", "timestamp_detected")
I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
I64_MIN = -(2**63)
TIMESTAMP_MAX_MS = 253_402_300_799_999
SUBJECT_RE = re.compile(r"utopia\.detections\.([1-9][0-9]*)")
JSON_TYPES = (None, "", "application/json")
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack")


class Pairs(list[tuple[Any, Any]]):
    """A decoded object/map, kept as its key-value pairs so repeated keys stay visible."""


@dataclass(frozen=True)
class Problem:
    field: str
    code: str


@dataclass(frozen=True)
class Reject:
    message_index: int
    event_index: int | None
    field: str
    code: str


@dataclass
class ReferenceBatch:
    token: int
    rows: list[Row] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    received: int = 0
    duplicates: int = 0
    unmatched: int = 0
    counts: Counter[tuple[int, int, int, str]] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return len(self.rows)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def copy_data(self) -> bytes:
        return copy_format.encode(self.rows)

    def ids(self) -> list[int]:
        return [row.detection_oid for row in self.rows]

    def counts_columns(self) -> tuple[list[int], list[int], list[int], list[str], list[int]]:
        keys = sorted(self.counts)
        return (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
            [self.counts[k] for k in keys],
        )


def decode(payload: bytes, content_type: str | None) -> list[Any]:
    """The payload's events (raises ValueError if the payload is undecodable)."""
    if content_type is not None:
        content_type = content_type.strip()
    if content_type in JSON_TYPES:
        value = json.loads(payload.decode("utf-8"), object_pairs_hook=Pairs, parse_constant=_no_constant)
        if _has_lone_surrogate(value):
            # Python accepts escaped lone surrogates; they are not Unicode text, so reject them.
            raise ValueError("lone surrogate escape")
    else:
        value = msgpack.unpackb(
            payload, raw=False, strict_map_key=False, object_pairs_hook=Pairs, unicode_errors="surrogateescape"
        )
    if isinstance(value, Pairs):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError("expected an object or an array of objects")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, Pairs):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value)
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _integer(value: Any, name: str, low: int, high: int) -> int | Problem:
    if type(value) is not int or not I64_MIN <= value <= U64_MAX:
        return Problem(name, "type")
    if not low <= value <= high:
        return Problem(name, "range")
    return value


def validate(event: Any, subject_location: int) -> tuple[int, int, int, str, int] | Problem:  # noqa: PLR0911 -- one return per rule reads plainest
    if not isinstance(event, Pairs):
        return Problem("payload", "not_object")
    values: dict[str, Any] = {}
    for key, value in event:
        if key in FIELDS:
            if key in values:
                return Problem(key, "duplicate_field")
            values[key] = value
    checked: list[Any] = []
    for name in FIELDS:
        if name not in values:
            return Problem(name, "missing")
        value = values[name]
        if name == "item_name":
            if not isinstance(value, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
                return Problem(name, "type")
            if not 1 <= len(value) <= 5000 or "\x00" in value:
                return Problem(name, "range")
            checked.append(value)
            continue
        low, high = (0, TIMESTAMP_MAX_MS) if name == "timestamp_detected" else (1, I64_MAX)
        result = _integer(value, name, low, high)
        if isinstance(result, Problem):
            return result
        checked.append(result)
    location, camera, detection, item, timestamp = checked
    if location != subject_location:
        return Problem("geographical_location_oid", "location_mismatch")
    return location, camera, detection, item, timestamp


def subject_location(subject: str) -> int | None:
    match = SUBJECT_RE.fullmatch(subject)
    if match is None:
        return None
    oid = int(match.group(1))
    return oid if 0 < oid <= I64_MAX else None


class ReferenceCore:
    def __init__(self, horizon_ms: int = 3_600_000) -> None:
        self.horizon_ms = horizon_ms
        self.span_ms = max(horizon_ms // 4, 1)
        # id -> {generation start: when that generation expires}
        self.marks: dict[int, dict[int, int]] = {}
        self.open: dict[int, tuple[list[int], int]] = {}
        self.locations: dict[int, str] = {}
        self.next_token = 1

    def set_locations(self, oids: Sequence[int], names: Sequence[str]) -> None:
        self.locations = dict(zip(oids, names, strict=True))

    def _generation(self, at_ms: int) -> int:
        return at_ms - at_ms % self.span_ms

    def _remember(self, detection_oid: int, at_ms: int, now_ms: int) -> None:
        start = self._generation(at_ms)
        expires = start + self.span_ms + self.horizon_ms
        if expires > now_ms:  # a generation already gone at `now` takes nothing in
            self.marks.setdefault(detection_oid, {})[start] = expires

    def warm(self, ids: Sequence[int], seen_at_ms: Sequence[int], now_ms: int | None = None) -> None:
        now = _now_ms() if now_ms is None else now_ms
        for detection_oid, at_ms in zip(ids, seen_at_ms, strict=True):
            self._remember(detection_oid, at_ms, now)

    def is_duplicate(self, detection_oid: int, now_ms: int) -> bool:
        return any(expires > now_ms for expires in self.marks.get(detection_oid, {}).values())

    def process(
        self,
        payloads: Sequence[bytes],
        subjects: Sequence[str],
        content_types: Sequence[str | None],
        *,
        now_ms: int | None = None,
    ) -> ReferenceBatch:
        now = _now_ms() if now_ms is None else now_ms
        batch = ReferenceBatch(token=self.next_token)
        self.next_token += 1
        for index, (payload, subject, content_type) in enumerate(zip(payloads, subjects, content_types, strict=True)):
            self._message(batch, index, payload, subject=subject, content_type=content_type, now=now)
        self.open[batch.token] = (batch.ids(), now)
        return batch

    def _message(
        self, batch: ReferenceBatch, index: int, payload: bytes, *, subject: str, content_type: str | None, now: int
    ) -> None:
        location = subject_location(subject)
        problem: Problem | None = None
        events: list[Any] = []
        if location is None:
            problem = Problem("subject", "subject")
        elif (content_type.strip() if content_type else content_type) not in JSON_TYPES + MSGPACK_TYPES:
            problem = Problem("content_type", "content_type")
        else:
            try:
                events = decode(payload, content_type)
            except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, RecursionError):
                problem = Problem("payload", "decode")
        if problem is not None or location is None:
            assert problem is not None
            batch.received += 1
            batch.rejects.append(Reject(index, None, problem.field, problem.code))
            return
        batch.received += len(events)
        for event_index, event in enumerate(events):
            result = validate(event, location)
            if isinstance(result, Problem):
                batch.rejects.append(Reject(index, event_index, result.field, result.code))
                continue
            loc, camera, detection, item, timestamp = result
            if self.is_duplicate(detection, now):
                batch.duplicates += 1
                continue
            self._remember(detection, now, now)
            name = self.locations.get(loc)
            batch.unmatched += name is None
            batch.rows.append(Row(loc, camera, detection, item, timestamp, name))
            batch.counts[(timestamp - timestamp % 60_000, loc, camera, item)] += 1

    def commit(self, token: int, now_ms: int | None = None) -> int:
        ids, _ = self.open.pop(token)
        return len(ids)

    def abort(self, token: int) -> int:
        ids, arrival_ms = self.open.pop(token)
        for detection_oid in ids:
            self.marks.get(detection_oid, {}).pop(self._generation(arrival_ms), None)
        return len(ids)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
