"""Building payloads for core tests: valid events, every kind of bad one, JSON and MessagePack."""

from __future__ import annotations

import json
from typing import Any

import msgpack

FIELDS = ("geographical_location_oid", "video_camera_oid", "detection_oid", "item_name", "timestamp_detected")
JSON = "application/json"
MSGPACK = "application/msgpack"

Pairs = list[tuple[Any, Any]]


def event(location: int, camera: int, detection: int, item: str, ts: int, **extra: Any) -> Pairs:
    pairs: Pairs = list(zip(FIELDS, (location, camera, detection, item, ts), strict=True))
    pairs.extend(extra.items())
    return pairs


def encode(events: list[Any], content_type: str, *, single: bool = False) -> bytes:
    """Events (pairs lists, or any other value for a non-object element) as one payload."""
    if content_type == JSON:
        parts = [_json(e) for e in events]
        return parts[0].encode() if single else ("[" + ",".join(parts) + "]").encode()
    packer = msgpack.Packer()
    body = b"".join(_msgpack(packer, e) for e in events)
    return body if single else packer.pack_array_header(len(events)) + body


def _json(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value) and value:
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value) + "}"
    return json.dumps(value)


def _msgpack(packer: msgpack.Packer, value: Any) -> bytes:
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value) and value:
        head = packer.pack_map_header(len(value))
        return head + b"".join(packer.pack(k) + _msgpack(packer, v) for k, v in value)
    return bytes(packer.pack(value))
