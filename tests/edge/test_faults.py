"""Fault injection against a real nats-server: outages, kill -9 of the agent, a full outbox.

Each test ends by reading the DETECTIONS stream back and counting events and distinct
detection_oids: every event exactly once is the contract's "no loss" at the edge.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from tests.edge.conftest import edge_process, edge_settings, stream_events, write_jsonl
from tests.support.nats_server import NatsServer
from utopia_edge.agent import EXIT_OK, Agent
from utopia_edge.sources.files import FileSource
from utopia_edge.sources.simulate import SimulatedSource

pytestmark = pytest.mark.slow


async def assert_exactly_once(url: str, expected: int) -> None:
    oids = [event["detection_oid"] for event in await stream_events(url)]
    assert len(oids) == expected
    assert len(set(oids)) == expected


async def wait_until(predicate: object, limit_s: float) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def copy_outbox(source: Path, target: Path) -> None:
    """Copy the outbox files (database, WAL, shared memory) from one directory to another."""
    target.mkdir(exist_ok=True)
    for stale in target.glob("outbox.db*"):
        stale.unlink()
    for file in source.glob("outbox.db*"):
        shutil.copy2(file, target / file.name)


@pytest.mark.timeout(120)
async def test_a_10_s_nats_outage_during_a_5k_per_s_stream_loses_and_duplicates_nothing(
    stream_server: NatsServer, tmp_path: Path
) -> None:
    count = 5000 * 16  # ~3 s before the outage, 10 s down, ~3 s after
    agent = Agent(edge_settings(stream_server.url, tmp_path / "outbox.db"), SimulatedSource(5000, count=count, seed=5))
    run = asyncio.create_task(agent.run())
    await asyncio.sleep(3)
    assert agent.stats.events_acked > 0
    await asyncio.to_thread(stream_server.stop)
    await asyncio.sleep(10)
    snapshot = agent.snapshot()
    assert snapshot.backlog_events > 40_000  # the source kept going into the outbox
    assert snapshot.oldest_unsent_age_s > 5
    assert not snapshot.connected
    await asyncio.to_thread(stream_server.start)
    assert await asyncio.wait_for(run, timeout=60) == EXIT_OK
    await assert_exactly_once(stream_server.url, count)


@pytest.mark.timeout(120)
async def test_kill_9_of_the_agent_mid_stream_then_restart_loses_nothing(
    stream_server: NatsServer, tmp_path: Path
) -> None:
    count = 30_000
    path = write_jsonl(tmp_path / "events.jsonl", count)
    common = ("--file", str(path), "--nats-url", stream_server.url, "--outbox", str(tmp_path / "outbox.db"))
    async with edge_process(*common, "--rate", "6000") as proc:
        await asyncio.sleep(2.5)
        assert proc.returncode is None
        proc.kill()
        await proc.wait()
    partial = len(await stream_events(stream_server.url))
    assert 0 < partial < count
    async with edge_process(*common) as proc:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == EXIT_OK, err.decode()
    assert b"resuming after record" in err
    await assert_exactly_once(stream_server.url, count)


@pytest.mark.timeout(120)
async def test_re_sent_batches_are_dropped_by_the_duplicate_window(stream_server: NatsServer, tmp_path: Path) -> None:
    """An agent that dies after the ack but before deleting re-sends the batch: same id, dropped."""
    count = 5000
    path = write_jsonl(tmp_path / "events.jsonl", count)
    outbox = tmp_path / "outbox.db"
    await asyncio.to_thread(stream_server.stop)  # offline: everything stays in the outbox
    offline = Agent(edge_settings(stream_server.url, outbox, shutdown_grace_s=0), FileSource(path))
    run = asyncio.create_task(offline.run())
    await wait_until(lambda: offline.stats.events_in == count, 30)
    offline.request_stop()
    await run
    snapshot = tmp_path / "snapshot"
    await asyncio.to_thread(copy_outbox, tmp_path, snapshot)  # the outbox as it was before any ack
    await asyncio.to_thread(stream_server.start)
    first = Agent(edge_settings(stream_server.url, outbox), FileSource(path))
    assert await first.run() == EXIT_OK
    assert first.stats.events_acked == count
    assert first.stats.duplicate_batches == 0
    await asyncio.to_thread(copy_outbox, snapshot, tmp_path)  # as if the agent died between acks and deletes
    again = Agent(edge_settings(stream_server.url, outbox), FileSource(path))
    assert await again.run() == EXIT_OK
    assert again.stats.batches_acked == first.stats.batches_acked
    assert again.stats.duplicate_batches == again.stats.batches_acked  # every re-send was dropped
    await assert_exactly_once(stream_server.url, count)


@pytest.mark.timeout(120)
async def test_a_full_outbox_holds_the_source_back_raises_the_alarm_and_drops_nothing(
    stream_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    count, bound = 20_000, 3_000
    await asyncio.to_thread(stream_server.stop)  # the site starts offline, too
    source = SimulatedSource(None, count=count, seed=9, chunk_max=500)
    agent = Agent(edge_settings(stream_server.url, tmp_path / "outbox.db", max_backlog_events=bound), source)
    with caplog.at_level(logging.WARNING, logger="utopia_edge"):
        run = asyncio.create_task(agent.run())
        await wait_until(lambda: agent.snapshot().outbox_full, 30)
        held = source.emitted
        await asyncio.sleep(1.5)
        assert source.emitted == held  # held back, not generating (nor dropping)
        assert agent.snapshot().backlog_events <= bound
        assert "ALARM outbox full" in caplog.text
        await asyncio.to_thread(stream_server.start)
        assert await asyncio.wait_for(run, timeout=60) == EXIT_OK
    assert "outbox has room again" in caplog.text
    assert agent.stats.outbox_full_episodes >= 1
    assert agent.stats.events_in == count
    await assert_exactly_once(stream_server.url, count)
