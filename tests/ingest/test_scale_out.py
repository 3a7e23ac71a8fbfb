"""Scale-out under faults: a 3-node NATS cluster with R3 streams and two ingest worker processes.
Mid-stream one NATS node is killed, then one worker is killed with SIGKILL; the other worker takes
its partitions over once the leases lapse. At the end every detection is stored exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import nats
import pytest

from tests.ingest.conftest import LOCATIONS, provisioned
from tests.ingest.harness import (
    IngestProcess,
    assert_exactly_once,
    copies_by_id,
    make_settings,
    publish_paced,
    stored_rows,
    wait_for_owners,
    wait_until_consumed,
)
from tests.ingest.traffic import site_stream
from tests.support.nats_server import NatsCluster, NatsServer
from utopia.config import Settings
from utopia_edge.contract import DETECTIONS_STREAM

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CLUSTER: dict[str, object] = {"streams.partitions": 4, "streams.replicas": 3, "ingest.lease_s": 3.0}


async def _stream_leader(url: str) -> str:
    nc = await nats.connect(servers=url.split(","))
    try:
        info = await nc.jetstream().stream_info(DETECTIONS_STREAM)
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == 2, "DETECTIONS is not replicated on three nodes"
        return str(info.cluster.leader)
    finally:
        await nc.close()


def _worker(url: str, db_url: str, name: str, log: Path, config: dict[str, object] = CLUSTER) -> IngestProcess:
    settings: Settings = make_settings(url, db_url, **config, **{"ingest.worker_id": name})
    return IngestProcess(settings, str(log))


async def test_node_loss_and_worker_kill_on_a_cluster_store_every_event_once(tmp_path: Path, db_url: str) -> None:
    with NatsCluster(tmp_path / "cluster") as cluster:
        await cluster.wait_for_jetstream()
        await provisioned(make_settings(cluster.url, db_url, **CLUSTER))
        messages = site_stream(300, 400, locations=4, seed=31)  # 120,000 events, 5 % re-sent
        copies = copies_by_id(messages, LOCATIONS)
        workers = [_worker(cluster.url, db_url, name, tmp_path / f"{name}.log") for name in ("w1", "w2")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        await wait_for_owners(cluster.url, {"w1", "w2"})

        publisher = asyncio.create_task(publish_paced(cluster.url, messages, seconds=20))
        await asyncio.sleep(5)
        leader = await _stream_leader(cluster.url)
        node = next(n for n in cluster.nodes if f"n{cluster.nodes.index(n)}" == leader)
        node.kill()  # the stream's leader: a new one must be elected while traffic flows
        await asyncio.sleep(4)
        for worker in workers:
            assert worker.proc is not None
            assert worker.proc.poll() is None, worker.stderr()
        workers[0].kill()
        await publisher

        survivors = ",".join(n.url for n in cluster.nodes if n is not node)
        owners = await wait_for_owners(survivors, {"w2"})
        assert sorted(owners) == [0, 1, 2, 3]
        await wait_until_consumed(survivors, within_s=180)
        assert workers[1].terminate() == 0, workers[1].stderr()
        # w2 claimed its own two partitions, then w1's two after the kill.
        assert workers[1].stderr(tail=None).count('"msg": "partition claimed"') >= 4

    rows = await stored_rows(db_url)
    assert_exactly_once(rows, copies)
    # Copies differ only in item name and timestamp: everything else is fixed per detection.
    assert {(r.detection_oid, r.geographical_location_oid, r.video_camera_oid) for r in rows} == {
        (oid, row.geographical_location_oid, row.video_camera_oid) for oid, rows_ in copies.items() for row in rows_
    }


async def test_a_paused_worker_is_fenced_out_and_every_event_is_stored_once(tmp_path: Path, db_url: str) -> None:
    """SIGSTOP of a worker in the middle of its batches, for longer than its leases: the other
    worker takes its partitions over; on SIGCONT the paused one must notice (a lease it cannot
    renew, a commit refused by the epoch) and hand back what it held, not commit it."""
    config: dict[str, object] = {"streams.partitions": 4, "ingest.lease_s": 2.0}
    with NatsServer(tmp_path / "nats") as server:
        await provisioned(make_settings(server.url, db_url, **config))
        messages = site_stream(240, 400, locations=4, seed=51)  # 96,000 events
        copies = copies_by_id(messages, LOCATIONS)
        workers = [_worker(server.url, db_url, n, tmp_path / f"{n}.log", config) for n in ("w1", "w2")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        await wait_for_owners(server.url, {"w1", "w2"})
        paused = workers[0].proc
        assert paused is not None

        publisher = asyncio.create_task(publish_paced(server.url, messages, seconds=10))
        await asyncio.sleep(3)
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            await wait_for_owners(server.url, {"w2"})  # its leases lapsed; w2 holds all four
            await asyncio.sleep(2)
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        await publisher
        await wait_for_owners(server.url, {"w1", "w2"})  # and shares them out again
        await wait_until_consumed(server.url, within_s=120)
        for worker in workers:
            assert worker.terminate() == 0, worker.stderr()

    noticed = workers[0].stderr(tail=None)
    assert any(
        line in noticed
        for line in ("partition taken over by another worker", "partition lease lost", "partition lease expired")
    ), noticed[-3000:]
    assert_exactly_once(await stored_rows(db_url), copies)
