"""Fixtures for the dashboard tests: the API tests' stack (PostgreSQL with the known dataset, NATS, ingest)
with `utopia api` as a child process that a test can stop and start again on the same port."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.api.conftest import SLOW_FETCH, Tokens, _wait_healthy, api_pg, make_tokens
from tests.api.dataset import Dataset
from tests.ingest.harness import IngestProcess, Message, make_settings, publish, settings_env, wait_until_consumed
from tests.support.nats_server import NatsServer, free_port
from tests.support.postgres import PostgresServer
from utopia.config import Settings

__all__ = ["ApiProcess", "TuiStack", "api_pg", "events_now", "tui_stack"]


class ApiProcess:
    """`utopia api` on a fixed port, stoppable and restartable."""

    def __init__(self, settings: Settings, port: int, log: Path) -> None:
        self.env = settings_env(settings) | {"UTOPIA_API_PORT": str(port), "UTOPIA_API_STATS_INTERVAL_S": "0.2"}
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "utopia.cli", "api"], env=self.env, stdout=out, stderr=out
            )
        _wait_healthy(self.base, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None


@dataclass
class TuiStack:
    api: ApiProcess
    nats_url: str
    tokens: Tokens
    data: Dataset

    async def publish(self, messages: list[Message]) -> None:
        await publish(self.nats_url, messages)


def events_now(location: int, item: str, count: int, first_oid: int, camera: int = 99) -> Message:
    """One message of `count` new detections at `location`, detected now."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    events = [
        {
            "geographical_location_oid": location,
            "video_camera_oid": camera,
            "detection_oid": first_oid + i,
            "item_name": item,
            "timestamp_detected": now_ms,
        }
        for i in range(count)
    ]
    return f"utopia.detections.{location}", json.dumps(events).encode(), {"Nats-Msg-Id": f"tui-{first_oid}"}


@pytest.fixture(scope="module")
def tui_stack(api_pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TuiStack]:
    tmp = tmp_path_factory.mktemp("tui")
    db_url = api_pg.create_database(f"tui_{int(time.time() * 1000)}", template="api_template")
    data = Dataset.build()
    with NatsServer(tmp / "nats") as nats_server:
        from utopia.ingest.provisioning import provision  # noqa: PLC0415 - as the API tests do, after the servers

        settings = make_settings(nats_server.url, db_url, **SLOW_FETCH)
        tokens = asyncio.run(make_tokens(db_url))
        asyncio.run(provision(settings))
        ingest = IngestProcess(settings, str(tmp / "ingest.log"))
        ingest.start()
        ingest.wait_ready()
        asyncio.run(publish(nats_server.url, data.messages))
        asyncio.run(wait_until_consumed(nats_server.url))
        api = ApiProcess(settings, free_port(), tmp / "api.log")
        api.start()
        try:
            yield TuiStack(api=api, nats_url=nats_server.url, tokens=tokens, data=data)
        finally:
            api.stop()
            ingest.terminate()
