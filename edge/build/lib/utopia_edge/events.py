"""Dataset A as a typed struct, and the wire encoding of batches (MessagePack or JSON arrays).

A batch payload is built from *bodies*: each body is a complete encoded array of events, so one
body alone is already a valid payload, and several bodies are merged by re-writing the array
header only, without decoding or re-encoding any event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec

from utopia_edge.contract import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_MSGPACK,
    INT64_MAX,
    ITEM_NAME_MAX_CHARS,
    TIMESTAMP_MAX_MS,
    TIMESTAMP_MIN_MS,
)
from utopia_edge.settings import WireFormat

Oid = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
ItemName = Annotated[str, msgspec.Meta(min_length=1, max_length=ITEM_NAME_MAX_CHARS)]
EpochMs = Annotated[int, msgspec.Meta(ge=TIMESTAMP_MIN_MS, le=TIMESTAMP_MAX_MS)]


# Unknown fields are accepted and dropped (the contract ignores them). gc=False: events hold no
# references to other objects, and skipping the cycle collector matters at 100k+ events/s.
class Event(msgspec.Struct, kw_only=True, gc=False):
    """One detection; field names and order are the contract's (`contract.EVENT_FIELDS`)."""

    geographical_location_oid: Oid
    video_camera_oid: Oid
    detection_oid: Oid
    item_name: ItemName
    timestamp_detected: EpochMs


CONTENT_TYPES: dict[WireFormat, str] = {"msgpack": CONTENT_TYPE_MSGPACK, "json": CONTENT_TYPE_JSON}


def describe_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """`Expected int >= 1 - at $.video_camera_oid` -> a shorter, field-first message."""
    return str(exc).replace("`", "")


class BodyCodec:
    """Encodes lists of events into bodies and merges bodies into one payload."""

    def __init__(self, fmt: WireFormat) -> None:
        self.format: WireFormat = fmt
        self.content_type = CONTENT_TYPES[fmt]
        self._encode = msgspec.msgpack.Encoder().encode if fmt == "msgpack" else msgspec.json.Encoder().encode

    def encode(self, events: Sequence[object]) -> bytes:
        """A complete array of `events` (Event structs, or raw mappings for simulated bad events)."""
        return self._encode(events)

    def merge(self, bodies: Sequence[bytes], total: int) -> bytes:
        """One array holding the events of every body, in order; `total` is their event count."""
        if len(bodies) == 1:
            return bodies[0]
        if self.format == "json":
            return b"[" + b",".join(body[1:-1] for body in bodies if len(body) > 2) + b"]"
        return msgpack_array_header(total) + b"".join(body[msgpack_header_len(body) :] for body in bodies)


def msgpack_array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def msgpack_header_len(body: bytes) -> int:
    first = body[0]
    if 0x90 <= first <= 0x9F:
        return 1
    if first == 0xDC:
        return 3
    if first == 0xDD:
        return 5
    raise ValueError(f"not a MessagePack array (first byte 0x{first:02x})")


def split_encode(
    codec: BodyCodec, events: Sequence[object], max_events: int, max_bytes: int
) -> list[tuple[int, bytes]]:
    """(count, body) pairs of at most `max_events` events and `max_bytes` bytes (unless one event is larger)."""
    bodies: list[tuple[int, bytes]] = []
    for start in range(0, len(events), max_events):
        _split_bytes(codec, events[start : start + max_events], max_bytes, bodies)
    return bodies


def _split_bytes(codec: BodyCodec, events: Sequence[object], max_bytes: int, out: list[tuple[int, bytes]]) -> None:
    body = codec.encode(events)
    if len(body) <= max_bytes or len(events) == 1:
        out.append((len(events), body))
        return
    half = len(events) // 2
    _split_bytes(codec, events[:half], max_bytes, out)
    _split_bytes(codec, events[half:], max_bytes, out)
