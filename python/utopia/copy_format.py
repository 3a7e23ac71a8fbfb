"""PostgreSQL binary COPY of detection rows, in pure Python.

The Rust core writes this format on the hot path; this module is the plain statement of it, used
by the reference implementation and by tests to read the core's output back.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PG_EPOCH_MS = 946_684_800_000
_HEADER = SIGNATURE + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)


class Row(NamedTuple):
    """One accepted detection, as stored (columns in `utopia.COPY_COLUMNS` order)."""

    geographical_location_oid: int
    video_camera_oid: int
    detection_oid: int
    item_name: str
    timestamp_detected: int  # epoch ms
    geographical_location: str | None


def _text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">i", len(raw)) + raw


def encode(rows: list[Row]) -> bytes:
    parts = [_HEADER]
    for row in rows:
        parts.append(
            struct.pack(
                ">hiqiqiq",
                6,
                8,
                row.geographical_location_oid,
                8,
                row.video_camera_oid,
                8,
                row.detection_oid,
            )
        )
        parts.append(_text(row.item_name))
        parts.append(struct.pack(">iq", 8, (row.timestamp_detected - PG_EPOCH_MS) * 1000))
        name = row.geographical_location
        parts.append(struct.pack(">i", -1) if name is None else _text(name))
    parts.append(_TRAILER)
    return b"".join(parts)


def decode(data: bytes) -> list[Row]:
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PostgreSQL binary COPY buffer")
    pos = len(_HEADER)
    rows: list[Row] = []
    while True:
        (fields,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if fields == -1:
            break
        values: list[object] = []
        for _ in range(fields):
            (length,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if length == -1:
                values.append(None)
                continue
            values.append(data[pos : pos + length])
            pos += length
        loc, cam, det, item, ts, name = values
        assert isinstance(loc, bytes)
        assert isinstance(cam, bytes)
        assert isinstance(det, bytes)
        assert isinstance(item, bytes)
        assert isinstance(ts, bytes)
        rows.append(
            Row(
                int.from_bytes(loc, "big", signed=True),
                int.from_bytes(cam, "big", signed=True),
                int.from_bytes(det, "big", signed=True),
                item.decode(),
                int.from_bytes(ts, "big", signed=True) // 1000 + PG_EPOCH_MS,
                name.decode() if isinstance(name, bytes) else None,
            )
        )
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the COPY trailer")
    return rows
