"""Where each partition stands: its consumer's backlog and the worker holding its lease.

Read from NATS alone, so the API, the benchmark and the tests see what the workers see.
"""

from __future__ import annotations

from typing import Any

import msgspec
import nats.js.errors

from utopia.ingest.leases import lease_owner
from utopia.ingest.partitions import LEASE_BUCKET, lease_key, partition_of_consumer
from utopia_edge.contract import DETECTIONS_STREAM

# JetStream lists at most this many consumers per request.
_PAGE = 256


class PartitionStatus(msgspec.Struct, frozen=True, kw_only=True):
    partition: int
    consumer: str
    # The worker holding the partition's lease; None while nobody does (a takeover is due).
    owner: str | None
    # Messages not yet delivered, and delivered but not yet acknowledged.
    pending: int
    ack_pending: int
    # Stream sequence of the last message acknowledged.
    acked_seq: int


async def partition_status(js: Any, consumer_base: str) -> list[PartitionStatus]:
    """One entry per partition consumer of DETECTIONS, by partition number."""
    infos: list[Any] = []
    while True:
        page = await js.consumers_info(DETECTIONS_STREAM, offset=len(infos))
        infos.extend(page)
        if len(page) < _PAGE:
            break
    try:
        kv = await js.key_value(LEASE_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        kv = None
    out = []
    for info in infos:
        partition = partition_of_consumer(consumer_base, info.name)
        if partition is None:
            continue
        out.append(
            PartitionStatus(
                partition=partition,
                consumer=info.name,
                owner=await _owner(kv, partition),
                pending=info.num_pending or 0,
                ack_pending=info.num_ack_pending or 0,
                acked_seq=info.ack_floor.stream_seq if info.ack_floor else 0,
            )
        )
    return sorted(out, key=lambda s: s.partition)


async def _owner(kv: Any, partition: int) -> str | None:
    if kv is None:
        return None
    try:
        entry = await kv.get(lease_key(partition))
    except nats.js.errors.NotFoundError:  # no such key, or deleted
        return None
    return lease_owner(entry.value)


async def backlog(js: Any, consumer_base: str) -> int:
    """Messages of DETECTIONS not yet acknowledged by the ingest consumers, all partitions."""
    return sum(s.pending + s.ack_pending for s in await partition_status(js, consumer_base))
