"""`/stream` through real HTTP clients (httpx against uvicorn on loopback) while a real worker ingests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from prometheus_client import generate_latest

from tests.api.conftest import make_tokens, serve
from tests.api.sse import Reader
from tests.ingest.conftest import provisioned
from tests.ingest.harness import Message, make_settings, publish, wait_until_consumed, worker_task
from tests.ingest.traffic import clean_stream
from tests.support.nats_server import NatsServer
from utopia_server.hub import Client, LiveHub
from utopia_server.metrics import ApiMetrics
from utopia_server.routes.stream import events

pytestmark = pytest.mark.timeout(120)


async def _stored(db_url: str) -> list[tuple[int, int]]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT detection_oid, geographical_location_oid FROM utopia.detections")
    finally:
        await conn.close()
    return [(r[0], r[1]) for r in rows]


async def _until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_counts_add_up_detections_filtered_and_fresh(nats_server: NatsServer, db_url: str) -> None:
    settings = await provisioned(make_settings(nats_server.url, db_url, **{"api.stats_interval_s": 0.2}))
    tokens = await make_tokens(db_url)
    headers = {"Authorization": f"Bearer {tokens.viewer}"}
    readers = {"all": Reader(), "harbour": Reader(), "plain": Reader()}
    queries = {"all": "?detections=true", "harbour": "?detections=true&location=2", "plain": ""}
    async with worker_task(settings), serve(settings) as (base, app), httpx.AsyncClient(timeout=30) as http:
        tasks, responses = [], []
        for key, reader in readers.items():
            request = http.build_request("GET", f"{base}/api/v1/stream{queries[key]}", headers=headers)
            response = await http.send(request, stream=True)
            responses.append(response)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            tasks.append(asyncio.create_task(reader.read(response)))
        await _until(lambda: len(app.state.hub.clients) == 3, 5, "three stream clients")
        await publish(nats_server.url, clean_stream(80, 50))
        await wait_until_consumed(nats_server.url)
        stored = await _stored(db_url)
        await _until(lambda: all(r.counted() == len(stored) for r in readers.values()), 5, "counts to add up")
        await _until(lambda: len(readers["all"].named("stats")) >= 3, 5, "stats events")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(r.aclose() for r in responses))

    everything = readers["all"]
    oids = sorted(d["detection_oid"] for e in everything.named("detections") for d in e.data)
    assert oids == sorted(oid for oid, _ in stored)
    harbour = [d for e in readers["harbour"].named("detections") for d in e.data]
    assert {d["geographical_location_oid"] for d in harbour} == {2}
    assert len(harbour) == sum(1 for _, loc in stored if loc == 2)
    assert readers["plain"].named("detections") == []
    # Freshness: every commit reached the client within a second.
    delays = [e.received_ms - e.data["committed_at_ms"] for e in everything.named("counts")]
    assert max(delays) < 1000, sorted(delays)[-5:]
    last = everything.named("stats")[-1].data
    assert last["stored"] == len(stored)
    assert last["pending"] == 0


async def test_many_clients_one_never_reading(nats_server: NatsServer, db_url: str) -> None:
    overrides = {"api.stats_interval_s": 0.25, "api.stream_client_queue": 16}
    settings = await provisioned(make_settings(nats_server.url, db_url, **overrides))
    tokens = await make_tokens(db_url)
    auth = {"Authorization": f"Bearer {tokens.viewer}"}
    request = (
        f"GET /api/v1/stream?detections=true HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n\r\n"
    )
    async with worker_task(settings), serve(settings) as (base, app):
        hub: LiveHub = app.state.hub
        # The stuck client sends its request and never reads a byte.
        _, stuck = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
        stuck.write(request.encode())
        limits = httpx.Limits(max_connections=300)
        async with httpx.AsyncClient(timeout=30, limits=limits, headers=auth) as http:
            readers = [Reader() for _ in range(199)]
            url = f"{base}/api/v1/stream"
            responses = await asyncio.gather(*(http.send(http.build_request("GET", url), stream=True) for _ in readers))
            tasks = [asyncio.create_task(r.read(resp)) for r, resp in zip(readers, responses, strict=True)]
            await _until(lambda: len(hub.clients) == 200, 10, "200 stream clients")
            # The publisher runs off this event loop, which serves 200 clients and the worker.
            await asyncio.to_thread(_publish_and_wait, nats_server.url, clean_stream(60, 100, seed=3))
            stored = len(await _stored(db_url))
            await _until(lambda: all(r.counted() == stored for r in readers), 10, "every reader to see every count")
            assert all(len(c.queue) <= 16 for c in hub.clients)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(resp.aclose() for resp in responses))
        stuck.close()
        await _until(lambda: not hub.clients, 5, "disconnected clients to be removed")
        assert "utopia_api_sse_clients 0.0" in generate_latest(app.state.metrics.registry).decode()


def _publish_and_wait(url: str, messages: list[Message]) -> None:
    async def run() -> None:
        await publish(url, messages)
        await wait_until_consumed(url)

    asyncio.run(run())


async def test_slow_client_gets_lagged_then_the_newest() -> None:
    hub = LiveHub(None, ApiMetrics(), queue=3, interval_s=1.0, consumer="ingest")
    async with hub.connect(detections=False, locations=None) as client:
        stream = events(hub, client, keepalive_s=0.05)
        assert (await anext(stream)).startswith(b"retry: 2000\n\nevent: stats\n")
        for i in range(10):
            hub.broadcast(f"event: counts\ndata: {i}\n\n".encode())
        assert await anext(stream) == b'event: lagged\ndata: {"dropped":7}\n\n'
        assert await anext(stream) == b"".join(f"event: counts\ndata: {i}\n\n".encode() for i in (7, 8, 9))
        assert await anext(stream) == b": keep-alive\n\n"
        await stream.aclose()
    assert not hub.clients


async def test_live_feed_fan_out_by_kind() -> None:
    hub = LiveHub(None, ApiMetrics(), queue=10, interval_s=1.0, consumer="ingest")
    counts = b'{"committed_at_ms":1,"received":5,"accepted":4,"stored":3,"duplicates":1,"rejected":1,"unmatched":2}'
    rejects = (
        b'[{"field":"item_name","code":"missing","reason":"item_name is missing","subject":"utopia.detections.1"}]'
    )
    async with (
        hub.connect(detections=True, locations=frozenset({2})) as harbour,
        hub.connect(detections=False, locations=None) as plain,
    ):
        for subject, data in [
            ("utopia.live.counts", counts),
            ("utopia.live.rejects", rejects),
            ("utopia.live.detections.1", b"[]"),
            ("utopia.live.detections.2", b"[]"),
        ]:
            await hub._on_message(SimpleNamespace(subject=subject, data=data))
        names = [f.split(b"\n", 1)[0] for f in harbour.queue]
        assert names == [b"event: counts", b"event: rejects", b"event: detections"]
        assert [f.split(b"\n", 1)[0] for f in plain.queue] == [b"event: counts", b"event: rejects"]
    assert (hub.totals["stored"], hub.totals["rejected"], hub.totals["unmatched"]) == (3, 1, 2)


def test_client_queue_is_bounded() -> None:
    client = Client(2, detections=True, locations=frozenset({1}))
    assert [client.push(b"x") for _ in range(4)] == [False, False, True, True]
    assert (len(client.queue), client.dropped) == (2, 2)
    assert client.wants(1)
    assert not client.wants(2)
