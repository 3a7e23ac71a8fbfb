"""Fixtures: a private PostgreSQL for the session; a whole stack (NATS, ingest, `utopia api`) serving a
known dataset for the route tests; per-test servers and an in-process API for the stream tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from litestar import Litestar
from nats.js.client import JetStreamContext

from tests.api.dataset import LOCATIONS, Dataset
from tests.ingest.harness import IngestProcess, make_settings, publish, settings_env, wait_until_consumed
from tests.support.nats_server import NatsServer, free_port
from tests.support.postgres import PostgresServer, migrated_server
from utopia.config import Settings
from utopia.ingest.provisioning import provision
from utopia_server import create_app
from utopia_server.tokens import create_token

_names = itertools.count()
PullSubscription = JetStreamContext.PullSubscription


@dataclass
class Tokens:
    viewer: str
    operator: str


@pytest.fixture(scope="session")
def api_pg() -> Iterator[PostgresServer]:
    with migrated_server("api_template", LOCATIONS) as server:
        yield server


async def make_tokens(db_url: str) -> Tokens:
    conn = await asyncpg.connect(db_url)
    try:
        return Tokens(
            viewer=await create_token(conn, "viewer", "test viewer"), operator=await create_token(conn, "operator")
        )
    finally:
        await conn.close()


@dataclass
class Stack:
    base: str
    settings: Settings
    tokens: Tokens
    data: Dataset
    db_url: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base + "/api/v1", headers=headers, timeout=10)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"API did not become healthy: {log.read_text()[-2000:]}")


class ApiProcess:
    """`utopia api` as a child process on a fixed port, stoppable and restartable."""

    def __init__(self, settings: Settings, port: int, log: Path) -> None:
        self.env = settings_env(settings) | {"UTOPIA_API_PORT": str(port), "UTOPIA_API_STATS_INTERVAL_S": "0.2"}
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            command = [sys.executable, "-m", "utopia.cli", "api"]
            self.proc = subprocess.Popen(command, env=self.env, stdout=out, stderr=out)
        _wait_healthy(self.base, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc)
        self.proc = None


@dataclass
class Ingested:
    nats_server: NatsServer
    settings: Settings
    tokens: Tokens
    data: Dataset
    db_url: str


@contextlib.contextmanager
def ingested(api_pg: PostgresServer, tmp: Path, db_name: str) -> Iterator[Ingested]:
    """NATS and `utopia ingest` as child processes, with the known dataset published and consumed."""
    db_url = api_pg.create_database(db_name, template="api_template")
    data = Dataset.build()
    with NatsServer(tmp / "nats") as nats_server:
        settings = make_settings(nats_server.url, db_url)
        tokens = asyncio.run(make_tokens(db_url))
        asyncio.run(provision(settings))
        ingest = IngestProcess(settings, str(tmp / "ingest.log"))
        ingest.start()
        try:
            ingest.wait_ready()
            asyncio.run(publish(nats_server.url, data.messages))
            asyncio.run(wait_until_consumed(nats_server.url))
            yield Ingested(nats_server, settings, tokens, data, db_url)
        finally:
            assert ingest.proc is not None
            stop_process(ingest.proc)


@pytest.fixture(scope="session")
def stack(api_pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """NATS, ingest and `utopia api` as child processes over the known dataset, all ingested."""
    tmp = tmp_path_factory.mktemp("stack")
    with ingested(api_pg, tmp, "api_routes") as done:
        api = ApiProcess(done.settings, free_port(), tmp / "api.log")
        api.start()
        try:
            yield Stack(base=api.base, settings=done.settings, tokens=done.tokens, data=done.data, db_url=done.db_url)
        finally:
            api.stop()


def stop_process(proc: subprocess.Popen[bytes], within_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `within_s`, so no child outlives the tests."""
    proc.terminate()
    try:
        proc.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def db_url(api_pg: PostgresServer) -> Iterator[str]:
    name = f"api_{next(_names)}"
    yield api_pg.create_database(name, template="api_template")
    api_pg.drop_database(name)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@contextlib.asynccontextmanager
async def serve(settings: Settings, **app_options: float) -> AsyncIterator[tuple[str, Litestar]]:
    """`create_app(settings)` on uvicorn in this event loop, on a free loopback port; yields its base URL."""
    port = free_port()
    app = create_app(settings, **app_options)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped during start-up"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
