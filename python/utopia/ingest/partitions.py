"""How the DETECTIONS stream is split among ingest workers.

The stream maps every published subject `utopia.detections.<location>` to
`utopia.detections.<partition>.<location>` with NATS's own `partition()` subject transform, so
the split is done by the server, deterministically, before anything is stored. Each partition
has one durable consumer (`<ingest.consumer>-<partition>`), and one worker at a time owns it (see
`utopia.ingest.leases`). All copies of an event travel on its location's subject, so they land
in the same partition and one worker's seen-set covers them.

`partition_of` is the same FNV-1a hash the server uses; a test holds the two together.
"""

from __future__ import annotations

from utopia_edge.contract import DETECTIONS_SUBJECT_PREFIX

# What publishers write to: exactly one token after the prefix (deeper subjects have no stream).
PUBLISHED_SUBJECTS = DETECTIONS_SUBJECT_PREFIX + "*"
# The key-value bucket holding partition leases and worker heartbeats.
LEASE_BUCKET = "utopia_ingest"

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def subject_transform_destination(partitions: int) -> str:
    return f"{DETECTIONS_SUBJECT_PREFIX}{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"


def partition_of(location_oid: int, partitions: int) -> int:
    """The partition the server maps `utopia.detections.<location_oid>` into."""
    value = _FNV_OFFSET
    for byte in str(location_oid).encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value % partitions


def published_subject(stored: str) -> str:
    """`utopia.detections.<location>` for a stored `utopia.detections.<partition>.<location>`.

    The core, the dead-letter headers and the live feed speak the subjects publishers use; the
    partition token is the stream's filing detail.
    """
    if not stored.startswith(DETECTIONS_SUBJECT_PREFIX):
        return stored
    partition, dot, location = stored[len(DETECTIONS_SUBJECT_PREFIX) :].partition(".")
    return DETECTIONS_SUBJECT_PREFIX + location if dot and partition.isdigit() else stored


def partition_filter(partition: int) -> str:
    """The stored subjects of one partition."""
    return f"{DETECTIONS_SUBJECT_PREFIX}{partition}.*"


def consumer_name(base: str, partition: int) -> str:
    return f"{base}-{partition}"


def partition_of_consumer(base: str, consumer: str) -> int | None:
    """The partition a durable consumer serves, or None when it is not one of `base`'s."""
    prefix = f"{base}-"
    if not consumer.startswith(prefix) or not consumer[len(prefix) :].isdigit():
        return None
    return int(consumer[len(prefix) :])


def lease_key(partition: int) -> str:
    return f"partition.{partition}"


def worker_key(worker_id: str) -> str:
    return f"worker.{worker_id}"
