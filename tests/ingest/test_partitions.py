"""Partitioned ingest on one NATS server: the server's partitioning agrees with ours, workers share
the partitions out between them, and dedup holds when a partition changes hands."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.ingest.conftest import LOCATIONS, provisioned
from tests.ingest.harness import (
    assert_exactly_once,
    copies_by_id,
    expected,
    make_settings,
    publish,
    stored_rows,
    wait_for_owners,
    wait_until_consumed,
    worker_task,
)
from tests.ingest.traffic import site_stream
from tests.support.nats_server import NatsServer, read_stream
from utopia.ingest.partitions import partition_of, published_subject
from utopia.ingest.worker import IngestError, Worker
from utopia.storage.writer import claim_consumer

pytestmark = pytest.mark.timeout(300)


def test_published_subject_drops_only_the_partition_token() -> None:
    assert published_subject("utopia.detections.3.17") == "utopia.detections.17"
    assert published_subject("utopia.detections.17") == "utopia.detections.17"
    assert published_subject("utopia.detections.x.17") == "utopia.detections.x.17"
    assert published_subject("utopia.dlq.detections") == "utopia.dlq.detections"


async def test_the_server_files_each_location_where_partition_of_says(nats_server: NatsServer, db_url: str) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url, **{"streams.partitions": 7}))
    locations = [*range(1, 60), 10**12 + 7, 2**63 - 1]
    await publish(settings.nats.url, [(f"utopia.detections.{loc}", b"{}", {}) for loc in locations])
    stored = [subject for subject, _, _ in await read_stream(settings.nats.url)]
    assert stored == [f"utopia.detections.{partition_of(loc, 7)}.{loc}" for loc in locations]
    assert len({partition_of(loc, 7) for loc in locations}) == 7


async def test_a_worker_refuses_settings_that_disagree_with_the_stream(nats_server: NatsServer, db_url: str) -> None:
    await provisioned(make_settings(nats_server.url, db_url, **{"streams.partitions": 4}))
    worker = Worker(make_settings(nats_server.url, db_url, **{"streams.partitions": 2}))
    with pytest.raises(IngestError, match=r"streams\.partitions=2"):
        await worker.run(asyncio.Event())


async def test_dedup_holds_when_partitions_change_hands(nats_server: NatsServer, db_url: str) -> None:
    """Worker a works all four partitions, then b joins and takes two over; copies of detections
    that a stored come in afterwards, to b's partitions too, with other item names and timestamps
    so that only a warmed seen-set can drop them. Stored: exactly what one core over the whole
    stream stores."""
    settings = await provisioned(
        make_settings(nats_server.url, db_url, **{"streams.partitions": 4, "ingest.lease_s": 2.0})
    )
    messages = site_stream(160, 200, locations=4, seed=21, duplicate_rate=0.1)
    first, second = messages[:80], messages[80:]
    want = expected(messages, LOCATIONS)
    a_settings = make_settings(
        nats_server.url, db_url, **{"streams.partitions": 4, "ingest.lease_s": 2.0, "ingest.worker_id": "a"}
    )
    b_settings = make_settings(
        nats_server.url, db_url, **{"streams.partitions": 4, "ingest.lease_s": 2.0, "ingest.worker_id": "b"}
    )
    async with worker_task(a_settings) as a:
        await wait_for_owners(settings.nats.url, {"a"})
        await publish(settings.nats.url, first)
        await wait_until_consumed(settings.nats.url)
        assert a.partitions == [0, 1, 2, 3]
        async with worker_task(b_settings) as b:
            owners = await wait_for_owners(settings.nats.url, {"a", "b"})
            assert sorted(owners.values()).count("b") == 2
            assert len(a.partitions) == len(b.partitions) == 2
            await publish(settings.nats.url, second)
            await wait_until_consumed(settings.nats.url)
    rows = await stored_rows(db_url)
    assert want.duplicates > 1000
    assert rows == sorted(want.rows, key=lambda r: r.detection_oid)


async def test_a_fenced_out_worker_hands_its_batch_back_and_nothing_doubles(
    nats_server: NatsServer, db_url: str
) -> None:
    """Another claim of the partition in the database (what a new owner does) while a worker still
    works it: the worker's next commit is refused, its batch handed back, and it claims the
    partition anew (its lease is free) with a warm seen-set; every detection is stored once."""
    settings = await provisioned(
        make_settings(nats_server.url, db_url, **{"ingest.lease_s": 2.0, "ingest.worker_id": "a"})
    )
    messages = site_stream(120, 200, locations=4, seed=41, duplicate_rate=0.1)
    async with worker_task(settings) as worker:
        await wait_for_owners(settings.nats.url, {"a"})
        await publish(settings.nats.url, messages[:60])
        await wait_until_consumed(settings.nats.url)
        conn = await asyncpg.connect(db_url)
        try:
            await claim_consumer(conn, "ingest-0", "intruder")
        finally:
            await conn.close()
        await publish(settings.nats.url, messages[60:])
        await wait_until_consumed(settings.nats.url)
        fenced = worker.metrics.partition_stops.labels("fenced")._value.get()
    assert fenced == 1
    # Handed-back messages are redelivered, maybe after later ones: the copy processed first counts.
    assert_exactly_once(await stored_rows(db_url), copies_by_id(messages, LOCATIONS))
