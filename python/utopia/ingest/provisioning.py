"""JetStream streams and the ingest consumer, as the contract names them (`utopia migrate`).

Idempotent: what exists with the wanted settings is left alone; what exists with different
settings is reported, never changed silently (changing retention or subjects of a live archive
is a decision for a person).
"""

from __future__ import annotations

from typing import Any

import nats
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

from utopia.config import IngestSettings, Settings, StreamSettings
from utopia.ingest.partitions import (
    LEASE_BUCKET,
    PUBLISHED_SUBJECTS,
    consumer_name,
    partition_filter,
    subject_transform_destination,
)
from utopia_edge.connection import connect_options
from utopia_edge.contract import DETECTIONS_STREAM, DLQ_STREAM, DLQ_SUBJECT

DAY_S = 86_400.0


class ProvisioningConflict(RuntimeError):
    """A stream or consumer exists with settings other than the wanted ones."""


def stream_configs(streams: StreamSettings) -> list[StreamConfig]:
    return [
        StreamConfig(
            name=DETECTIONS_STREAM,
            subjects=[PUBLISHED_SUBJECTS],
            # The server files each message under its partition: utopia.detections.<p>.<location>.
            subject_transform=SubjectTransform(
                src=PUBLISHED_SUBJECTS, dest=subject_transform_destination(streams.partitions)
            ),
            storage=StorageType.FILE,
            num_replicas=streams.replicas,
            max_age=streams.max_age_days * DAY_S,
            max_bytes=streams.max_bytes,
            # Publishers must hear "full" rather than have old history dropped under them.
            discard=DiscardPolicy.OLD,
            duplicate_window=streams.duplicate_window_s,
        ),
        StreamConfig(
            name=DLQ_STREAM,
            subjects=[DLQ_SUBJECT],
            storage=StorageType.FILE,
            num_replicas=streams.replicas,
            max_age=streams.dlq_max_age_days * DAY_S,
            duplicate_window=streams.duplicate_window_s,
        ),
    ]


def consumer_configs(ingest: IngestSettings, streams: StreamSettings) -> list[ConsumerConfig]:
    return [consumer_config(ingest, partition) for partition in range(streams.partitions)]


def consumer_config(ingest: IngestSettings, partition: int) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=consumer_name(ingest.consumer, partition),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=partition_filter(partition),
        ack_wait=ingest.ack_wait_s,
        max_ack_pending=ingest.max_ack_pending,
        # Never give up on a message: an event is stored or dead-lettered, not dropped.
        max_deliver=-1,
    )


def lease_bucket_config(ingest: IngestSettings, streams: StreamSettings) -> KeyValueConfig:
    # An entry not renewed within the TTL disappears: that is how a dead worker's lease ends.
    return KeyValueConfig(
        bucket=LEASE_BUCKET, history=1, ttl=ingest.lease_s, replicas=streams.replicas, storage=StorageType.FILE
    )


_STREAM_FIELDS = (
    "subjects",
    "subject_transform",
    "storage",
    "num_replicas",
    "max_age",
    "max_bytes",
    "duplicate_window",
)
_CONSUMER_FIELDS = ("ack_policy", "filter_subject", "ack_wait", "max_ack_pending", "max_deliver")


def _differences(have: Any, want: Any, fields: tuple[str, ...]) -> list[str]:
    out = []
    for name in fields:
        a, b = getattr(have, name), getattr(want, name)
        if b is None:  # left to the server's default
            continue
        if isinstance(a, float) or isinstance(b, float):
            same = a is not None and b is not None and abs(float(a) - float(b)) < 1e-3
        else:
            same = a == b
        if not same:
            out.append(f"{name} is {a!r}, wanted {b!r}")
    return out


async def provision_jetstream(js: Any, settings: Settings) -> list[str]:
    """Creates what is missing; returns what it did. Raises `ProvisioningConflict` on drift."""
    lines: list[str] = []
    conflicts: list[str] = []
    for wanted in stream_configs(settings.streams):
        try:
            info = await js.stream_info(wanted.name)
        except NotFoundError:
            await js.add_stream(config=wanted)
            lines.append(f"created stream {wanted.name}")
            continue
        diff = _differences(info.config, wanted, _STREAM_FIELDS)
        if diff:
            conflicts.append(f"stream {wanted.name}: " + "; ".join(diff))
        else:
            lines.append(f"stream {wanted.name} up to date")
    for wanted_consumer in consumer_configs(settings.ingest, settings.streams):
        name = wanted_consumer.durable_name
        try:
            consumer = await js.consumer_info(DETECTIONS_STREAM, name)
        except NotFoundError:
            await js.add_consumer(DETECTIONS_STREAM, config=wanted_consumer)
            lines.append(f"created consumer {name}")
        else:
            diff = _differences(consumer.config, wanted_consumer, _CONSUMER_FIELDS)
            if diff:
                conflicts.append(f"consumer {name}: " + "; ".join(diff))
            else:
                lines.append(f"consumer {name} up to date")
    lines.append(await _provision_leases(js, settings, conflicts))
    if conflicts:
        raise ProvisioningConflict(
            "existing JetStream objects differ from the settings (left unchanged; update or delete them by hand "
            "with the nats CLI, or change the settings): " + " | ".join(conflicts)
        )
    return lines


async def _provision_leases(js: Any, settings: Settings, conflicts: list[str]) -> str:
    wanted = lease_bucket_config(settings.ingest, settings.streams)
    try:
        kv = await js.key_value(LEASE_BUCKET)
    except BucketNotFoundError:
        await js.create_key_value(config=wanted)
        return f"created key-value bucket {LEASE_BUCKET}"
    status = await kv.status()
    diff = []
    if status.ttl is None or abs(status.ttl - (wanted.ttl or 0)) > 1e-3:
        diff.append(f"ttl is {status.ttl!r}, wanted {wanted.ttl!r} (ingest.lease_s)")
    if status.stream_info.config.num_replicas != wanted.replicas:
        diff.append(f"replicas is {status.stream_info.config.num_replicas!r}, wanted {wanted.replicas!r}")
    if diff:
        conflicts.append(f"key-value bucket {LEASE_BUCKET}: " + "; ".join(diff))
        return f"key-value bucket {LEASE_BUCKET} differs"
    return f"key-value bucket {LEASE_BUCKET} up to date"


async def provision(settings: Settings) -> list[str]:
    """The `utopia migrate` hook."""
    options = connect_options(settings.nats, name="utopia-migrate")
    # A one-off command fails fast instead of waiting for the server like a service does.
    options.update(max_reconnect_attempts=2, reconnect_time_wait=0.5)
    nc = await nats.connect(**options)
    try:
        return await provision_jetstream(nc.jetstream(), settings)
    finally:
        await nc.close()
