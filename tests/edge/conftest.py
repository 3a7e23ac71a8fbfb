"""Fixtures of the edge agent tests: a real nats-server per test, settings, reading the stream back."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support.nats_server import NatsServer, create_detections_stream, read_stream
from utopia_edge.contract import CONTENT_TYPE_JSON, HEADER_CONTENT_TYPE
from utopia_edge.settings import EdgeSettings, load_edge_settings

EDGE_CLI = [sys.executable, "-m", "utopia_edge.cli"]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def stream_server(nats_server: NatsServer) -> NatsServer:
    """A server with the DETECTIONS stream provisioned (as `utopia migrate` would)."""
    await create_detections_stream(nats_server.url)
    return nats_server


def edge_settings(url: str, outbox: Path, **edge: Any) -> EdgeSettings:
    """Settings as the CLI builds them, with quick retries so fault tests stay short."""
    overrides: dict[str, object] = {
        "nats.url": url,
        "edge.outbox_path": str(outbox),
        "edge.backoff_min_s": 0.1,
        "edge.backoff_max_s": 1.0,
        "edge.ack_timeout_s": 2.0,
        "edge.stats_interval_s": 0,
    }
    overrides.update({f"edge.{name}": value for name, value in edge.items()})
    return load_edge_settings(env={}, overrides=overrides)


async def stream_events(url: str) -> list[dict[str, Any]]:
    """Every event stored in DETECTIONS (batches decoded by their Content-Type)."""
    events: list[dict[str, Any]] = []
    for _subject, headers, payload in await read_stream(url):
        if headers.get(HEADER_CONTENT_TYPE) == CONTENT_TYPE_JSON:
            events.extend(msgspec.json.decode(payload))
        else:
            events.extend(msgspec.msgpack.decode(payload))
    return events


def write_jsonl(path: Path, count: int, *, first_oid: int = 1, locations: int = 5) -> Path:
    """`count` valid events with detection_oids first_oid.. as JSON lines."""
    encoder = msgspec.json.Encoder()
    with path.open("wb") as fh:
        for i in range(count):
            oid = first_oid + i
            event = {
                "geographical_location_oid": oid % locations + 1,
                "video_camera_oid": 100 + oid % 7,
                "detection_oid": oid,
                "item_name": "person" if oid % 3 else "car",
                "timestamp_detected": 1_700_000_000_000 + oid,
            }
            fh.write(encoder.encode(event) + b"\n")
    return path


@contextlib.asynccontextmanager
async def edge_process(*args: str, stdin: int | None = None) -> AsyncIterator[asyncio.subprocess.Process]:
    """`utopia-edge ARGS` as a subprocess (stderr piped); killed if the test leaves it running."""
    proc = await asyncio.create_subprocess_exec(*EDGE_CLI, *args, stdin=stdin, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
