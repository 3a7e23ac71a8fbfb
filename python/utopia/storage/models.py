"""Typed results of the storage layer; msgspec Structs, so the API can return them as they are."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

__all__ = [
    "Bucket",
    "BucketCount",
    "CameraStatus",
    "ConsumerStats",
    "Detection",
    "DetectionPage",
    "Flavour",
    "IngestStats",
    "LocationCount",
    "Progress",
    "TopItem",
    "WriteResult",
]

Flavour = Literal["plain", "timescaledb"]
Bucket = Literal["minute", "hour", "day"]


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a consumer is: recorded in the same transaction as the rows of its batch."""

    consumer: str
    stream_seq: int
    # The epoch of the claim this batch was processed under (`claim_consumer`).
    epoch: int = 0


class Fenced(Exception):
    """The consumer was claimed by another worker (a newer epoch): this batch must not commit."""


class WriteResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one `write_batch` call committed.

    `new_ids` is None when every accepted row was new (the fast path): then the committed ids are
    `batch.ids()` and the applied counts are `batch.counts()`. Otherwise it lists the ids that were
    new (rows already stored were skipped) and `counts` holds the increments actually applied, as
    (minute_ms, location, camera, item, count) columns like `Batch.counts()`.
    """

    stored: int
    conflicts: int
    new_ids: list[int] | None
    counts: tuple[list[int], list[int], list[int], list[str], list[int]]

    @property
    def all_new(self) -> bool:
        return self.new_ids is None


class TopItem(msgspec.Struct, frozen=True, kw_only=True):
    geographical_location_oid: int
    geographical_location: str | None
    item_rank: int
    item_name: str
    count: int


class BucketCount(msgspec.Struct, frozen=True, kw_only=True):
    bucket: datetime
    geographical_location_oid: int
    item_name: str
    count: int


class CameraStatus(msgspec.Struct, frozen=True, kw_only=True):
    video_camera_oid: int
    geographical_location_oid: int
    geographical_location: str | None
    last_event: datetime
    recent_count: int
    silent: bool


class Detection(msgspec.Struct, frozen=True, kw_only=True):
    geographical_location_oid: int
    video_camera_oid: int
    detection_oid: int
    item_name: str
    timestamp_detected: datetime
    geographical_location: str | None
    ingested_at: datetime


class DetectionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Detection]
    next_cursor: str | None


class LocationCount(msgspec.Struct, frozen=True, kw_only=True):
    geographical_location_oid: int
    geographical_location: str
    count: int


class ConsumerStats(msgspec.Struct, frozen=True, kw_only=True):
    consumer: str
    stream_seq: int
    batches: int
    received: int
    stored: int
    duplicates: int
    rejected: int
    unmatched: int
    updated_at: datetime
    # The ingest worker that last claimed this consumer, and how many claims it has seen.
    owner: str | None = None
    owner_epoch: int = 0


class IngestStats(msgspec.Struct, frozen=True, kw_only=True):
    consumers: list[ConsumerStats]
    received: int
    stored: int
    duplicates: int
    rejected: int
    unmatched: int
    last_commit_at: datetime | None
    detected_last_minute: int
