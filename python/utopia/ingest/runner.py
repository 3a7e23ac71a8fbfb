"""One partition's ingest: claim it, warm its seen-set, then fetch -> core -> commit -> ack.

A fetcher and a writer joined by a bounded queue: the fetcher pulls message batches from the
partition's durable consumer and runs them through the core; the writer commits them in order and
acknowledges only after the commit. The queue's bound is the back-pressure: while the database is
away the writer retries, the queue fills, and fetching stops. Messages held meanwhile are kept
alive with in-progress acks, so JetStream does not redeliver them while they are still being
written.

Taking a partition over is ordered for exactly-once: bump the consumer's epoch in the database
(this waits for a commit of the previous owner in flight and fences out any later one), then
read back the ids stored recently for the partition's locations, and only then fetch. Every task
is owned here and cancelled on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors

from utopia import Core
from utopia.config import Settings
from utopia.ingest.metrics import IngestMetrics
from utopia.ingest.partitions import consumer_name, partition_of
from utopia.ingest.pipeline import TRANSIENT_DB_ERRORS, InFlight, Pipeline, Stopping
from utopia.storage.locations import fetch_locations
from utopia.storage.models import Flavour
from utopia.storage.writer import claim_consumer, recent_ids
from utopia_edge.contract import DETECTIONS_STREAM

log = logging.getLogger("utopia.ingest")

# How long the partition's tasks get to end once told to; past it, what is held is handed back.
_FINISH_S = 10.0


class RunnerError(RuntimeError):
    """The partition cannot be worked (its consumer is missing, say); the message says why."""


async def load_core(
    conn: Any, settings: Settings, core: Core, keep_location: Callable[[int], bool] | None = None
) -> tuple[int, int]:
    """Dataset B into the join table and recent ids into the seen-set; returns their counts."""
    oids, names = await fetch_locations(conn)
    core.set_locations(oids, names)
    warmed = 0
    for ids, seen_at in await recent_ids(conn, settings.dedup.horizon_s, keep_location=keep_location):
        # Millions of ids at a takeover: off the event loop, which keeps other partitions' leases.
        warmed += await asyncio.to_thread(core.warm, ids, seen_at)
    return len(oids), warmed


class PartitionRunner:
    def __init__(
        self,
        settings: Settings,
        partition: int,
        core: Core,
        metrics: IngestMetrics,
        *,
        js: Any,
        nc: Any,
        flavour: Flavour,
        worker_id: str,
    ) -> None:
        self.settings = settings
        self.partition = partition
        self.consumer = consumer_name(settings.ingest.consumer, partition)
        self.core = core
        self.metrics = metrics
        self.js = js
        self.nc = nc
        self.flavour = flavour
        self.worker_id = worker_id
        self.queue: asyncio.Queue[InFlight | None] = asyncio.Queue(maxsize=settings.ingest.max_in_flight)
        self.in_flight: list[InFlight] = []
        self.stopping = asyncio.Event()
        self.writer_gone = asyncio.Event()
        # Set once fetching: from then on a stop finishes the batches in flight.
        self.consuming = asyncio.Event()
        # Last commit, or last moment with nothing to do: the worker hands a stalled partition on.
        self.progressed_at = time.monotonic()

    def _keep_location(self) -> Callable[[int], bool] | None:
        partitions = self.settings.streams.partitions
        if partitions == 1:
            return None
        return lambda location: partition_of(location, partitions) == self.partition

    async def _claim(self, stop: asyncio.Event) -> int:
        """The fencing epoch, once the database has it and the core is warm; retries while it is away."""
        delay = self.settings.ingest.retry_initial_s
        while True:
            try:
                # The claim queues behind a commit of the previous owner; one that hangs (a frozen
                # process mid-transaction) must not hold the takeover forever: retry instead.
                conn = await asyncpg.connect(
                    self.settings.database.url, timeout=10, server_settings={"lock_timeout": "30s"}
                )
                try:
                    epoch = await claim_consumer(conn, self.consumer, self.worker_id)
                    locations, warmed = await load_core(conn, self.settings, self.core, self._keep_location())
                finally:
                    await conn.close()
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("claim failed: database unavailable; retrying", extra={"error": repr(exc)})
            else:
                log.info(
                    "partition claimed",
                    extra={"consumer": self.consumer, "epoch": epoch, "locations": locations, "warmed_ids": warmed},
                )
                return epoch
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
                    raise Stopping
            delay = min(delay * 2, self.settings.ingest.retry_max_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Works the partition until `stop` is set, then finishes what it fetched and returns.

        Raises `Fenced` when another worker took the partition over.
        """
        try:
            epoch = await self._claim(stop)
        except Stopping:
            return
        self.progressed_at = time.monotonic()  # a long warm-up is not a stall
        try:
            # Binding looks nothing up: without this, a missing consumer is a fetch error forever.
            await self.js.consumer_info(DETECTIONS_STREAM, self.consumer)
        except nats.js.errors.NotFoundError as exc:
            raise RunnerError(
                f"consumer {self.consumer} on stream {DETECTIONS_STREAM} not found: run `utopia migrate`"
            ) from exc
        psub = await self.js.pull_subscribe_bind(durable=self.consumer, stream=DETECTIONS_STREAM)
        pipeline = Pipeline(
            self.settings, self.core, self.metrics, js=self.js, nc=self.nc, flavour=self.flavour,
            consumer=self.consumer, epoch=epoch,
        )  # fmt: skip
        tasks = [
            asyncio.create_task(self._fetch(psub, pipeline), name=f"fetch-{self.partition}"),
            asyncio.create_task(self._write(pipeline), name=f"write-{self.partition}"),
        ]
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"heartbeat-{self.partition}")
        self.consuming.set()
        try:
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            for task in tasks:
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            self.stopping.set()
            # The writer gets a bounded grace period; what it cannot finish is handed back.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.ingest.ack_wait_s):
                    await asyncio.gather(*tasks)
        finally:
            # Flags before cancellation: nats-py can swallow a cancel, so no task may need one to end.
            self.stopping.set()
            pipeline.stop.set()
            for task in [*tasks, heartbeat]:
                task.cancel()
            _, stuck = await asyncio.wait([*tasks, heartbeat], timeout=_FINISH_S)
            if stuck:
                log.error("partition tasks did not stop; handing back anyway", extra={"consumer": self.consumer})
            await self._hand_back()
            await pipeline.close()
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await psub.unsubscribe()

    async def _fetch(self, psub: Any, pipeline: Pipeline) -> None:
        ingest = self.settings.ingest
        while not self.stopping.is_set():
            try:
                msgs = await psub.fetch(batch=ingest.fetch_batch, timeout=ingest.fetch_timeout_s)
            except (nats.errors.TimeoutError, TimeoutError):
                # nats-py raises its own timeout, or a bare one when the event loop was busy.
                msgs = []
            except (nats.errors.ConnectionClosedError, nats.errors.NoRespondersError, nats.js.errors.APIError) as exc:
                log.warning("fetch failed; retrying", extra={"error": repr(exc), "consumer": self.consumer})
                await asyncio.sleep(ingest.retry_initial_s)
                continue
            if not msgs:  # a timeout, or a batch of status messages only
                self._idle()
                continue
            item = await pipeline.process(msgs)
            self.in_flight.append(item)
            # Waits while the writer is behind: back-pressure instead of unbounded memory.
            if not await self._put(item):
                return
        await self._put(None)

    def _idle(self) -> None:
        """Nothing to fetch and nothing in flight counts as keeping up."""
        if not self.in_flight:
            self.progressed_at = time.monotonic()

    async def _put(self, item: InFlight | None) -> bool:
        """Queues `item` for the writer; False (not queued) once the writer has ended."""
        put = asyncio.ensure_future(self.queue.put(item))
        gone = asyncio.ensure_future(self.writer_gone.wait())
        try:
            await asyncio.wait([put, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not put.done():
                put.cancel()
        return put.done() and not put.cancelled()

    async def _write(self, pipeline: Pipeline) -> None:
        try:
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
                self.progressed_at = time.monotonic()
        finally:
            self.writer_gone.set()

    async def _hand_back(self) -> None:
        """Batches not committed at shutdown: forget their ids and let JetStream redeliver them."""
        for item in reversed(self.in_flight):  # newest first: each abort undoes one batch's marks
            with contextlib.suppress(Exception):
                self.core.abort(item.batch.token)
        # Oldest first, so the redelivery keeps the stream's order as far as JetStream can.
        for item in self.in_flight:
            for msg in item.msgs:
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
        self.in_flight.clear()

    async def _heartbeat(self) -> None:
        interval = max(self.settings.ingest.ack_wait_s / 3, 0.5)
        while not self.stopping.is_set():
            await asyncio.sleep(interval)
            for item in list(self.in_flight):
                if time.monotonic() - item.fetched_at < interval:
                    continue
                for msg in item.msgs:
                    with contextlib.suppress(nats.errors.Error):
                        await msg.in_progress()
