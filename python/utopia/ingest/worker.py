"""The ingest worker (`utopia ingest`): a fetcher and a writer joined by a bounded queue.

The fetcher pulls message batches from the durable consumer and runs them through the core; the
writer commits them in order and acknowledges only after the commit. The queue's bound is the
back-pressure: while the database is away the writer retries, the queue fills, and fetching
stops. Messages held meanwhile are kept alive with in-progress acks, so JetStream does not
redeliver them to anyone else while they are still being written. Every task is owned here and
cancelled on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
import nats
import nats.errors
import nats.js.errors
from prometheus_client import start_http_server

from utopia import Core
from utopia.config import Settings
from utopia.ingest.metrics import IngestMetrics
from utopia.ingest.pipeline import TRANSIENT_DB_ERRORS, InFlight, Pipeline, Stopping
from utopia.storage import migrations
from utopia.storage.locations import NOTIFY_CHANNEL, fetch_locations
from utopia.storage.maintenance import maintain
from utopia.storage.models import Flavour
from utopia.storage.writer import recent_ids
from utopia_edge.connection import connect_options
from utopia_edge.contract import DETECTIONS_STREAM

log = logging.getLogger("utopia.ingest")


class IngestError(RuntimeError):
    """The worker cannot start; the message says what to do."""


async def open_database(settings: Settings) -> tuple[Any, Flavour]:
    try:
        conn = await asyncpg.connect(settings.database.url, timeout=10)
    except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
        raise IngestError(f"cannot connect to database.url (UTOPIA_DATABASE_URL): {exc}") from exc
    flavour = await migrations.current_flavour(conn)
    if flavour is None:
        await conn.close()
        raise IngestError("the database has no Utopia schema: run `utopia migrate` first")
    return conn, flavour


async def load_core(conn: Any, settings: Settings, core: Core) -> tuple[int, int]:
    """Dataset B into the join table and recent ids into the seen-set; returns their counts."""
    oids, names = await fetch_locations(conn)
    core.set_locations(oids, names)
    warmed = 0
    for ids, seen_at in await recent_ids(conn, settings.dedup.horizon_s):
        warmed += core.warm(ids, seen_at)
    return len(oids), warmed


class Worker:
    def __init__(self, settings: Settings, metrics: IngestMetrics | None = None, core: Core | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        # A core may be handed in (the benchmark swaps in the pure-Python reference).
        self.core = core or Core(horizon_ms=int(settings.dedup.horizon_s * 1000))
        self.queue: asyncio.Queue[InFlight | None] = asyncio.Queue(maxsize=settings.ingest.max_in_flight)
        self.in_flight: list[InFlight] = []
        self.stopping = asyncio.Event()
        self.reload_locations = asyncio.Event()
        # Set once consuming: before that there is nothing to finish, so a stop may just cancel.
        self.consuming = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set, then finishes what it fetched and returns."""
        conn, flavour = await open_database(self.settings)
        try:
            locations, warmed = await load_core(conn, self.settings, self.core)
        finally:
            await conn.close()
        log.info("core ready", extra={"flavour": flavour, "locations": locations, "warmed_ids": warmed})
        # Waits (and retries) until NATS is reachable, as a service should.
        log.info("connecting to NATS", extra={"url": self.settings.nats.url})
        nc = await nats.connect(**connect_options(self.settings.nats, name="utopia-ingest"))
        js = nc.jetstream()
        consumer = self.settings.ingest.consumer
        try:
            psub = await js.pull_subscribe_bind(durable=consumer, stream=DETECTIONS_STREAM)
        except nats.js.errors.NotFoundError as exc:
            await nc.close()
            raise IngestError(
                f"consumer {consumer} on stream {DETECTIONS_STREAM} not found: run `utopia migrate`"
            ) from exc
        pipeline = Pipeline(self.settings, self.core, self.metrics, js=js, nc=nc, flavour=flavour, consumer=consumer)
        server = self._serve_metrics()
        tasks = [
            asyncio.create_task(self._fetch(psub, pipeline), name="fetch"),
            asyncio.create_task(self._write(pipeline), name="write"),
        ]
        helpers = [
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._upkeep(flavour), name="upkeep"),
            asyncio.create_task(self._watch_lag(js, consumer), name="lag"),
            asyncio.create_task(self._listen_for_locations(), name="locations"),
        ]
        log.info("ingesting", extra={"consumer": consumer, "stream": DETECTIONS_STREAM})
        self.consuming.set()
        try:
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            for task in tasks:
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            log.info("stopping: finishing batches in flight")
            self.stopping.set()
            # The writer gets a bounded grace period; what it cannot finish is handed back.
            try:
                async with asyncio.timeout(self.settings.ingest.ack_wait_s):
                    await asyncio.gather(*tasks)
            except TimeoutError:
                pipeline.stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self._shut_down([*tasks, *helpers], pipeline, nc, server)

    async def _shut_down(self, tasks: list[asyncio.Task[None]], pipeline: Pipeline, nc: Any, server: Any) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._hand_back()
        await pipeline.close()
        # Acks, naks and live notifications still buffered go out before the connection closes;
        # a server that is gone must not hold the exit up.
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await nc.flush(timeout=2)
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            async with asyncio.timeout(5):
                await nc.close()
        if server is not None:
            server.shutdown()
        log.info("stopped")

    def _serve_metrics(self) -> Any:
        ingest = self.settings.ingest
        if not ingest.metrics_port:
            return None
        server, _thread = start_http_server(ingest.metrics_port, ingest.metrics_host, registry=self.metrics.registry)
        log.info("metrics", extra={"url": f"http://{ingest.metrics_host}:{ingest.metrics_port}/metrics"})
        return server

    async def _fetch(self, psub: Any, pipeline: Pipeline) -> None:
        ingest = self.settings.ingest
        while not self.stopping.is_set():
            try:
                msgs = await psub.fetch(batch=ingest.fetch_batch, timeout=ingest.fetch_timeout_s)
            except (nats.errors.TimeoutError, TimeoutError):
                # nats-py raises its own timeout, or a bare one when the event loop was busy.
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.NoRespondersError, nats.js.errors.APIError) as exc:
                log.warning("fetch failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(ingest.retry_initial_s)
                continue
            if not msgs:  # the client can hand back an empty batch (status messages only)
                continue
            item = await pipeline.process(msgs)
            self.in_flight.append(item)
            # Blocks while the writer is behind: back-pressure instead of unbounded memory.
            await self.queue.put(item)
        await self.queue.put(None)

    async def _write(self, pipeline: Pipeline) -> None:
        while (item := await self.queue.get()) is not None:
            try:
                result = await pipeline.write(item)
                await pipeline.finish(item, result)
            except Stopping:
                return
            for msg in item.msgs:
                # A lost ack means a redelivery, which dedup turns into duplicates: nothing doubles.
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()
            self.in_flight.remove(item)

    async def _hand_back(self) -> None:
        """Batches not committed at shutdown: forget their ids and let JetStream redeliver them."""
        for item in reversed(self.in_flight):
            with contextlib.suppress(Exception):
                self.core.abort(item.batch.token)
            for msg in item.msgs:
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
        self.in_flight.clear()

    async def _heartbeat(self) -> None:
        interval = max(self.settings.ingest.ack_wait_s / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            for item in list(self.in_flight):
                if time.monotonic() - item.fetched_at < interval:
                    continue
                for msg in item.msgs:
                    with contextlib.suppress(nats.errors.Error):
                        await msg.in_progress()

    async def _upkeep(self, flavour: Flavour) -> None:
        """Partitions ahead, rollup folding and a location reload, every maintenance interval."""
        while True:
            await self._wait_or_reload(self.settings.ingest.maintenance_interval_s)
            try:
                conn = await asyncpg.connect(self.settings.database.url, timeout=10)
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("upkeep skipped: database unavailable", extra={"error": repr(exc)})
                await asyncio.sleep(self.settings.ingest.retry_max_s)
                continue
            only_reload = self.reload_locations.is_set()
            self.reload_locations.clear()
            try:
                oids, names = await fetch_locations(conn)
                self.core.set_locations(oids, names)
                self.metrics.locations.set(len(oids))
                if only_reload:
                    log.info("locations reloaded", extra={"locations": len(oids)})
                else:
                    for line in await maintain(conn, flavour, self.settings.storage):
                        log.info(line)
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("upkeep failed", extra={"error": repr(exc)})
            finally:
                await conn.close()

    async def _wait_or_reload(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.reload_locations.wait()

    async def _listen_for_locations(self) -> None:
        """`utopia locations load` notifies after its commit; reload then, not at the next upkeep."""
        while True:
            try:
                conn = await asyncpg.connect(self.settings.database.url, timeout=10)
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError):
                await asyncio.sleep(self.settings.ingest.retry_max_s)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_args: self.reload_locations.set())
            try:
                await lost.wait()
            finally:
                conn.terminate()
            # A notification may have been missed while disconnected.
            self.reload_locations.set()

    async def _watch_lag(self, js: Any, consumer: str) -> None:
        while True:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                info = await js.consumer_info(DETECTIONS_STREAM, consumer)
                self.metrics.consumer_pending.set(info.num_pending or 0)
                self.metrics.consumer_ack_pending.set(info.num_ack_pending or 0)
            seen_ids, seen_bytes, *_ = self.core.stats()
            self.metrics.seen_ids.set(seen_ids)
            self.metrics.seen_bytes.set(seen_bytes)
            await asyncio.sleep(2.0)
