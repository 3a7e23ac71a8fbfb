"""Response and request bodies of the API that are not storage results (those are returned as they are)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from utopia.ingest.status import PartitionStatus
from utopia.storage.models import IngestStats

__all__ = ["Check", "Health", "LiveStats", "Stats", "TokenCreated", "TokenRequest"]


class LiveStats(msgspec.Struct, frozen=True, kw_only=True):
    """What ingest committed, as seen on the live feed by this API process (the `stats` SSE event)."""

    at: datetime
    interval_s: float
    # Per second over the last interval.
    received_per_s: float
    stored_per_s: float
    duplicates_per_s: float
    rejected_per_s: float
    unmatched_per_s: float
    # Since this API process started.
    received: int
    stored: int
    duplicates: int
    rejected: int
    unmatched: int
    # Lag: messages in the DETECTIONS stream not yet delivered to / acknowledged by ingest (None: unknown).
    pending: int | None
    ack_pending: int | None
    # Per partition of the stream: its consumer's lag and the ingest worker that owns it.
    partitions: list[PartitionStatus]
    # Freshness: the last commit notified, how long ago, and how long the notification took to arrive.
    last_commit_at: datetime | None
    since_last_commit_s: float | None
    notify_delay_ms: float | None
    stream_clients: int


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    live: LiveStats
    stored: IngestStats


class Check(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    detail: str


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok", "degraded"]
    nats: Check
    database: Check
    ingest_pending: int | None
    ingest_since_last_commit_s: float | None
    # Partitions no ingest worker holds right now: a takeover is due (or no worker runs).
    ingest_partitions_unowned: list[int]


# What the api_tokens table accepts: 1..200 characters, none of them control characters (NUL
# cannot be stored at all), so a bad name is a 400 here rather than a database error.
TokenName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: Literal["viewer", "operator"]
    name: TokenName | None = msgspec.field(default=None)


class TokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None
    role: str
    token: str
