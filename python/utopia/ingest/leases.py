"""Partition leases in a NATS key-value bucket: which worker owns which partition.

Each lease is a key `partition.<k>` created with compare-and-set (only one `create` wins) and
renewed with `update` against the revision this worker last wrote, so a lease somebody else
took cannot be renewed by mistake. The bucket's TTL (`ingest.lease_s`) ends the lease of a
worker that stopped renewing (crashed, cut off). Workers also heartbeat a key `worker.<id>`, so
each knows how many are alive and claims its fair share.

The lease decides who *should* work a partition; the database epoch (`claim_consumer`) is what
fences a worker that lost its lease without noticing.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import nats.js.errors

from utopia.ingest.partitions import lease_key, worker_key

_PARTITION_PREFIX = lease_key(0)[:-1]
_WORKER_PREFIX = worker_key("x")[:-1]


@dataclass(frozen=True)
class LeaseView:
    """What the bucket holds now: partitions someone owns, and the workers alive."""

    taken: frozenset[int]
    workers: frozenset[str]


def lease_value(worker_id: str) -> bytes:
    return json.dumps({"worker": worker_id, "renewed_at_ms": int(time.time() * 1000)}).encode()


def lease_owner(value: bytes | None) -> str | None:
    """The worker named in a lease's value (None when unreadable)."""
    try:
        owner = json.loads(value or b"")["worker"]
    except (ValueError, KeyError, TypeError):
        return None
    return owner if isinstance(owner, str) else None


class LeaseKeeper:
    def __init__(self, kv: Any, worker_id: str) -> None:
        self.kv = kv
        self.worker_id = worker_id
        # partition -> revision of our last write of its lease
        self.revisions: dict[int, int] = {}

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self.revisions)

    async def heartbeat(self) -> None:
        await self.kv.put(worker_key(self.worker_id), lease_value(self.worker_id))

    async def view(self) -> LeaseView:
        try:
            keys = await self.kv.keys()
        except nats.js.errors.NoKeysError:
            keys = []
        taken = {int(k[len(_PARTITION_PREFIX) :]) for k in keys if k.startswith(_PARTITION_PREFIX)}
        workers = {k[len(_WORKER_PREFIX) :] for k in keys if k.startswith(_WORKER_PREFIX)}
        return LeaseView(taken=frozenset(taken), workers=frozenset(workers))

    async def claim(self, partition: int) -> bool:
        """Takes a free partition; False when another worker was first."""
        try:
            self.revisions[partition] = await self.kv.create(lease_key(partition), lease_value(self.worker_id))
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self, partition: int) -> bool:
        """Extends a held lease; False when it expired and was taken, or is gone."""
        try:
            self.revisions[partition] = await self.kv.update(
                lease_key(partition), lease_value(self.worker_id), last=self.revisions[partition]
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            # An earlier renewal whose reply was lost (a leader change) may have applied after all.
            if await self._still_ours(partition):
                return True
            del self.revisions[partition]
            return False
        return True

    async def _still_ours(self, partition: int) -> bool:
        try:
            entry = await self.kv.get(lease_key(partition))
        except nats.js.errors.NotFoundError:
            return False
        if lease_owner(entry.value) != self.worker_id or entry.revision is None:
            return False
        self.revisions[partition] = entry.revision
        return True

    async def release(self, partition: int) -> None:
        """Gives a lease back at once (only if it is still ours), so another worker need not wait."""
        revision = self.revisions.pop(partition, None)
        if revision is None:
            return
        # An APIError: it had expired and someone else holds it now, theirs to keep.
        with contextlib.suppress(nats.js.errors.APIError):
            await self.kv.delete(lease_key(partition), last=revision)

    async def leave(self) -> None:
        for partition in list(self.revisions):
            await self.release(partition)
        await self.kv.delete(worker_key(self.worker_id))
