"""Fixtures for the dashboard tests: the API tests' stack (PostgreSQL with the known dataset, NATS, ingest)
with `utopia api` as a child process that a test can stop and start again on the same port."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tests.api.conftest import ApiProcess, Tokens, api_pg, ingested
from tests.api.dataset import Dataset
from tests.ingest.harness import Message, publish
from tests.support.nats_server import free_port
from tests.support.postgres import PostgresServer

__all__ = ["ApiProcess", "TuiStack", "api_pg", "events_now", "tui_stack"]


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
    with ingested(api_pg, tmp, f"tui_{int(time.time() * 1000)}") as done:
        api = ApiProcess(done.settings, free_port(), tmp / "api.log")
        api.start()
        try:
            yield TuiStack(api=api, nats_url=done.nats_server.url, tokens=done.tokens, data=done.data)
        finally:
            api.stop()
