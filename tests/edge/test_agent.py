"""The agent against a real nats-server: delivery, headers, failures that must be clear, metrics."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import msgspec
import pytest

from tests.edge.conftest import EDGE_CLI, edge_process, edge_settings, stream_events, write_jsonl
from tests.support.nats_server import NatsServer, read_stream
from utopia_edge.agent import EXIT_FATAL, EXIT_OK, Agent
from utopia_edge.contract import CONTENT_TYPE_JSON, CONTENT_TYPE_MSGPACK, HEADER_CONTENT_TYPE, HEADER_MSG_ID
from utopia_edge.sources.simulate import SimulatedSource

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("fmt", "content_type"), [("msgpack", CONTENT_TYPE_MSGPACK), ("json", CONTENT_TYPE_JSON)])
async def test_simulated_events_arrive_once_in_batches_per_location(
    stream_server: NatsServer, tmp_path: Path, fmt: str, content_type: str
) -> None:
    settings = edge_settings(stream_server.url, tmp_path / "outbox.db", format=fmt, batch_size=200)
    agent = Agent(settings, SimulatedSource(None, count=30_000, seed=1, bad=0.01))
    assert await agent.run() == EXIT_OK
    messages = await read_stream(stream_server.url)
    ids = [headers[HEADER_MSG_ID] for _, headers, _ in messages]
    assert len(set(ids)) == len(ids)
    events = 0
    for subject, headers, payload in messages:
        assert headers[HEADER_CONTENT_TYPE] == content_type
        batch = msgspec.json.decode(payload) if fmt == "json" else msgspec.msgpack.decode(payload)
        assert 1 <= len(batch) <= 200
        location = int(subject.rsplit(".", 1)[1])
        # Simulated bad events may carry a wrong location on purpose; the rest match the subject.
        assert sum(e.get("geographical_location_oid") == location for e in batch) >= len(batch) * 0.9
        events += len(batch)
    assert events == 30_000
    assert agent.stats.events_acked == 30_000
    assert agent.snapshot().backlog_events == 0


async def test_missing_stream_fails_with_a_clear_message(nats_server: NatsServer, tmp_path: Path) -> None:
    async with edge_process(
        "--simulate", "100", "--nats-url", nats_server.url, "--outbox", str(tmp_path / "o.db")
    ) as proc:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == EXIT_FATAL
    assert b"stream DETECTIONS not found" in err
    assert b"utopia migrate" in err


async def test_bad_file_rows_are_reported_and_the_rest_published(stream_server: NatsServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", 1000)
    lines = path.read_bytes().splitlines()
    lines[9] = b'{"geographical_location_oid": 1, "video_camera_oid": -3}'  # line 10
    lines[499] = b"garbage"  # line 500
    path.write_bytes(b"\n".join(lines) + b"\n")
    async with edge_process(
        "--file", str(path), "--nats-url", stream_server.url, "--outbox", str(tmp_path / "o.db")
    ) as proc:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == EXIT_OK, err.decode()
    assert b"line 10: bad row skipped" in err
    assert b"video_camera_oid" in err
    assert b"line 500: bad row skipped" in err
    assert b"2 bad row(s) skipped" in err
    published = sorted(e["detection_oid"] for e in await stream_events(stream_server.url))
    assert published == [oid for oid in range(1, 1001) if oid not in (10, 500)]


async def test_utopia_edge_reads_stdin(stream_server: NatsServer, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "events.jsonl", 500).read_bytes()
    args = ("--stdin", "--nats-url", stream_server.url, "--outbox", str(tmp_path / "o.db"))
    async with edge_process(*args, stdin=subprocess.PIPE) as proc:
        _, err = await asyncio.wait_for(proc.communicate(data), timeout=30)
    assert proc.returncode == EXIT_OK, err.decode()
    assert len(await stream_events(stream_server.url)) == 500


async def test_sigterm_stops_cleanly_and_keeps_the_rest(stream_server: NatsServer, tmp_path: Path) -> None:
    args = ("--simulate", "2000", "--nats-url", stream_server.url, "--outbox", str(tmp_path / "o.db"))
    async with edge_process(*args) as proc:
        await asyncio.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=15)
    assert proc.returncode == EXIT_OK, err.decode()
    assert b"summary:" in err
    assert b"0 events left in the outbox" in err


async def test_metrics_endpoint_serves_prometheus_text(stream_server: NatsServer, tmp_path: Path) -> None:
    settings = edge_settings(stream_server.url, tmp_path / "outbox.db", metrics_port=0)
    agent = Agent(settings, SimulatedSource(1000, seed=3))
    task = asyncio.create_task(agent.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if agent.metrics_port and agent.stats.events_acked:
                break
        url = f"http://127.0.0.1:{agent.metrics_port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    finally:
        agent.request_stop()
        assert await task == EXIT_OK
    values = {line.split()[0]: float(line.split()[1]) for line in body.splitlines() if not line.startswith("#")}
    for name in ("backlog_events", "backlog_bytes", "oldest_unsent_age_s", "send_rate_eps", "outbox_full"):
        assert f"utopia_edge_{name}" in values
    assert values["utopia_edge_events_acked_total"] > 0
    assert values["utopia_edge_connected"] == 1.0


def test_utopia_edge_and_utopia_edge_subcommand_share_flags() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    standalone = subprocess.run([*EDGE_CLI, "--help"], capture_output=True, text=True, check=True, env=env).stdout
    core = subprocess.run(
        [sys.executable, "-m", "utopia.cli", "edge", "--help"], capture_output=True, text=True, check=True, env=env
    ).stdout
    flags = collections.Counter(word for word in standalone.split() if word.startswith("--"))
    for flag in ("--simulate", "--file", "--stdin", "--rate", "--duplicates", "--bad", "--fsync", "--format"):
        assert flag in flags
        assert flag in core
