"""`utopia migrate` provisions the streams and the consumer on a real nats-server, idempotently."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StorageType

from tests.support.nats_server import NatsServer
from utopia import cli
from utopia_edge.contract import DETECTIONS_STREAM, DLQ_STREAM

pytestmark = pytest.mark.timeout(60)


def migrate(nats_url: str, db_url: str, *extra: str) -> int:
    return cli.main(["migrate", "--database-url", db_url, *extra])


def test_migrate_provisions_streams_and_consumer_once(
    nats_server: NatsServer, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UTOPIA_NATS_URL", nats_server.url)
    assert migrate(nats_server.url, db_url) == 0
    out = capsys.readouterr().out
    assert "nats: created stream DETECTIONS" in out
    assert "nats: created stream DETECTIONS_DLQ" in out
    assert "nats: created consumer ingest" in out
    assert migrate(nats_server.url, db_url) == 0
    assert "nats: stream DETECTIONS up to date" in capsys.readouterr().out

    asyncio.run(check_objects(nats_server.url))


async def check_objects(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        stream = await js.stream_info(DETECTIONS_STREAM)
        assert stream.config.storage == StorageType.FILE
        assert stream.config.duplicate_window is not None
        assert stream.config.duplicate_window >= 120
        assert stream.config.max_age == pytest.approx(7 * 86400)
        assert (await js.stream_info(DLQ_STREAM)).config.subjects == ["utopia.dlq.detections"]
        consumer = await js.consumer_info(DETECTIONS_STREAM, "ingest-0")
        assert consumer.config.max_deliver == -1
    finally:
        await nc.close()


def test_migrate_reports_a_stream_with_other_settings(
    nats_server: NatsServer, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UTOPIA_NATS_URL", nats_server.url)
    assert migrate(nats_server.url, db_url) == 0
    capsys.readouterr()
    monkeypatch.setenv("UTOPIA_STREAMS_MAX_AGE_DAYS", "3")
    assert migrate(nats_server.url, db_url) == 1
    err = capsys.readouterr().err
    assert "stream DETECTIONS: max_age" in err
    assert "left unchanged" in err


def test_migrate_names_the_setting_when_nats_is_unreachable(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UTOPIA_NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("UTOPIA_NATS_CONNECT_TIMEOUT_S", "1")
    assert migrate("", db_url) == 1
    assert "nats.url" in capsys.readouterr().err
