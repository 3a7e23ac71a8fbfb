"""Settings of the core services, one typed section per concern.

`load(...)` reads them once at start-up (file < `UTOPIA_*` env < flags) and the result is passed
to whatever needs it. See `utopia_edge.settings` for the precedence rules and error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from utopia_edge.settings import (
    LogLevel,
    NatsSettings,
    Port,
    PositiveFloat,
    PositiveInt,
    SettingsError,
    load_settings,
)

__all__ = [
    "ApiSettings",
    "DatabaseSettings",
    "DedupSettings",
    "IngestSettings",
    "NatsSettings",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "StreamSettings",
    "load",
]


class DatabaseSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[
        str, msgspec.Meta(pattern=r"^postgres(ql)?://", description="postgresql://user[:password]@host:port/dbname")
    ] = "postgresql://utopia@127.0.0.1:5432/utopia"
    pool_size: PositiveInt = 4


class StorageSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Schema flavour and data lifetime (`utopia migrate` applies the policies)."""

    # auto: TimescaleDB when the extension is available, plain PostgreSQL otherwise.
    flavour: Literal["auto", "timescaledb", "plain"] = "auto"
    # Raw detections older than this are dropped (whole partitions / chunks).
    retention_days: PositiveInt = 30
    # Per-minute rollups older than this are dropped; per-hour rollups are kept for good.
    minute_rollup_retention_days: PositiveInt = 90
    # Partition (plain) or chunk (TimescaleDB) width, and partitions created ahead of today.
    partition_days: PositiveInt = 1
    partitions_ahead: PositiveInt = 3
    # TimescaleDB: compress chunks older than this; continuous aggregates re-read this much late data.
    compress_after_days: PositiveInt = 2
    late_window_hours: PositiveInt = 24

    def __post_init__(self) -> None:
        if self.late_window_hours >= self.retention_days * 24:
            raise ValueError("late_window_hours must be shorter than retention_days")
        if self.minute_rollup_retention_days < self.retention_days:
            raise ValueError("minute_rollup_retention_days must be at least retention_days")


class DedupSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Copies of a detection that arrive within this many seconds of each other count once.
    horizon_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 24 * 3600)] = 3600.0


class IngestSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Base name of the durable pull consumers of the DETECTIONS stream, one per partition
    # (`ingest-0`, `ingest-1`, ...).
    consumer: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+$")] = "ingest"
    # Messages per fetch (each carries up to a few hundred events from an edge agent).
    fetch_batch: PositiveInt = 200
    fetch_timeout_s: PositiveFloat = 1.0
    # Processed batches waiting for the database; fetching stops while this many wait.
    max_in_flight: PositiveInt = 2
    # JetStream redelivers a message not acknowledged within this time; workers heartbeat
    # messages they are still writing, so this only bounds recovery after a crash.
    ack_wait_s: PositiveFloat = 30.0
    max_ack_pending: PositiveInt = 20_000
    # Retry of a failed database write: first delay, doubling up to the maximum.
    retry_initial_s: PositiveFloat = 0.2
    retry_max_s: PositiveFloat = 5.0
    # Partition upkeep and rollup folding (plain PostgreSQL flavour).
    maintenance_interval_s: PositiveFloat = 60.0
    metrics_host: str = "127.0.0.1"
    # 0 disables the /metrics listener.
    metrics_port: Port = 9108
    # This worker's name in partition leases (`/stats` shows it); default `<hostname>-<pid>`.
    worker_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    # A worker that stops renewing loses its partitions after this long; another takes them over.
    # Set when `utopia migrate` creates the lease bucket (its TTL).
    lease_s: Annotated[float, msgspec.Meta(ge=1, le=300)] = 10.0


class StreamSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """JetStream streams provisioned by `utopia migrate`."""

    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    # Subjects are split into this many partitions, each owned by one ingest worker at a time.
    # Fixed once the stream exists: more partitions than workers leaves room to grow.
    partitions: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 1
    max_age_days: PositiveFloat = 7.0
    # Bytes kept in DETECTIONS before the oldest messages go; -1 is no size limit.
    max_bytes: Annotated[int, msgspec.Meta(ge=-1)] = 50 * 2**30
    duplicate_window_s: Annotated[float, msgspec.Meta(ge=120)] = 120.0
    dlq_max_age_days: PositiveFloat = 30.0


class ApiSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    cors_origins: list[str] = msgspec.field(default_factory=list)
    metrics_public: bool = False
    stream_client_queue: PositiveInt = 1000
    stats_interval_s: PositiveFloat = 1.0


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    dedup: DedupSettings = msgspec.field(default_factory=DedupSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
    streams: StreamSettings = msgspec.field(default_factory=StreamSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    log_level: LogLevel = "info"
    # One TOML file may configure a camera site's edge agent too; the core leaves that part alone.
    edge: dict[str, object] = msgspec.field(default_factory=dict)


def load(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Settings for this process; raises `SettingsError` naming the bad setting."""
    return load_settings(Settings, config_file=config_file, env=env, overrides=overrides)
