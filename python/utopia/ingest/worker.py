"""The ingest worker process (`utopia ingest`): claims its share of the partitions and runs one
`PartitionRunner` per partition it holds.

Every few seconds (a third of `ingest.lease_s`) it heartbeats, renews its leases, and balances:
with W workers alive and P partitions each aims for ceil(P / W). A worker over its share gives
partitions back gracefully (finishes their batches, then releases the lease); one under it claims
free partitions. A worker that dies stops renewing; its leases expire and the others take the
partitions over (see `runner` for why that cannot count twice). Process-wide chores live here
too: /metrics, partition upkeep, location reloads, consumer lag. Every task is owned here and
cancelled on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats
import nats.errors
import nats.js.errors
from prometheus_client import start_http_server

from utopia import Core
from utopia.config import Settings
from utopia.ingest.leases import LeaseKeeper
from utopia.ingest.metrics import IngestMetrics
from utopia.ingest.partitions import LEASE_BUCKET, consumer_name, subject_transform_destination
from utopia.ingest.pipeline import TRANSIENT_DB_ERRORS
from utopia.ingest.runner import PartitionRunner
from utopia.storage import migrations
from utopia.storage.locations import NOTIFY_CHANNEL, fetch_locations
from utopia.storage.maintenance import maintain
from utopia.storage.models import Fenced, Flavour
from utopia_edge.connection import connect_options
from utopia_edge.contract import DETECTIONS_STREAM

log = logging.getLogger("utopia.ingest")

# The errors of a NATS request that a later try may not meet.
NATS_ERRORS = (nats.errors.Error, TimeoutError)
_MAX_RETRY_DELAY_S = 60.0


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


def default_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


@dataclass
class _Running:
    runner: PartitionRunner
    stop: asyncio.Event
    task: asyncio.Task[None]
    # When the lease was last renewed: past the lease time the partition may be someone else's.
    renewed_at: float = field(default_factory=time.monotonic)
    # Stopped because it made no progress (handed to another worker).
    stalled: bool = False


class Worker:
    def __init__(
        self,
        settings: Settings,
        metrics: IngestMetrics | None = None,
        core_factory: Callable[[], Core] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        self.worker_id = settings.ingest.worker_id or default_worker_id()
        # A core per partition; the benchmark swaps in the pure-Python reference.
        horizon_ms = int(settings.dedup.horizon_s * 1000)
        self.core_factory = core_factory or (lambda: Core(horizon_ms=horizon_ms))
        self.running: dict[int, _Running] = {}
        self.reload_locations = asyncio.Event()
        # Set once the worker takes part in the partition balance; before that a stop may just cancel.
        self.consuming = asyncio.Event()
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        # Shutting down: renew what is held, claim nothing.
        self.draining = False
        # A partition that ended in an error or stalled is not claimed again before this time,
        # and the delay doubles each time in a row (no restart storm).
        self._retry_at: dict[int, float] = {}
        self._retry_delay: dict[int, float] = {}

    @property
    def partitions(self) -> list[int]:
        """The partitions this worker is working now."""
        return sorted(self.running)

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set, then finishes what its partitions fetched and returns."""
        conn, flavour = await open_database(self.settings)
        await conn.close()
        # Waits (and retries) until NATS is reachable, as a service should.
        log.info("connecting to NATS", extra={"url": self.settings.nats.url})
        nc = await nats.connect(**connect_options(self.settings.nats, name=f"utopia-ingest-{self.worker_id}"))
        try:
            js = nc.jetstream()
            kv = await self._check_provisioned(js)
        except BaseException:
            await nc.close()
            raise
        keeper = LeaseKeeper(kv, self.worker_id)
        server = self._serve_metrics()
        helpers = [
            asyncio.create_task(self._upkeep(flavour), name="upkeep"),
            asyncio.create_task(self._watch_lag(js), name="lag"),
            asyncio.create_task(self._listen_for_locations(), name="locations"),
        ]
        balance = asyncio.create_task(self._balance(keeper, js, nc, flavour), name="balance")
        log.info(
            "ingesting",
            extra={"worker": self.worker_id, "partitions": self.settings.streams.partitions},
        )
        self.consuming.set()
        try:
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([stopped, balance], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if balance.done():
                balance.result()  # the balance loop only ends by raising: show why
        finally:
            log.info("stopping: finishing batches in flight")
            # Leases stay renewed while the partitions finish, so nobody fences the drain.
            self.draining = True
            await self._stop_all()
            # A flag, not only cancellation: a NATS request in flight can swallow a cancel, and
            # every loop here checks it.
            self._closing.set()
            self._changed.set()
            await _end(balance)
            with contextlib.suppress(*NATS_ERRORS):
                async with asyncio.timeout(5):
                    await keeper.leave()
            for task in helpers:
                await _end(task)
            await self._close(nc, server)

    async def _check_provisioned(self, js: Any) -> Any:
        """The lease bucket, once the stream is known to match the settings; else what to run."""
        try:
            info = await js.stream_info(DETECTIONS_STREAM)
            kv = await js.key_value(LEASE_BUCKET)
        except (nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError) as exc:
            raise IngestError(
                f"stream {DETECTIONS_STREAM} or key-value bucket {LEASE_BUCKET} not found: run `utopia migrate`"
            ) from exc
        ttl = (await kv.status()).ttl
        if ttl is None or abs(ttl - self.settings.ingest.lease_s) > 1e-3:
            raise IngestError(
                f"key-value bucket {LEASE_BUCKET} has a TTL of {ttl} s but ingest.lease_s is "
                f"{self.settings.ingest.lease_s}: every worker needs the lease time `utopia migrate` set up"
            )
        transform = info.config.subject_transform
        wanted = subject_transform_destination(self.settings.streams.partitions)
        if transform is None or transform.dest != wanted:
            raise IngestError(
                f"stream {DETECTIONS_STREAM} maps subjects to {transform.dest if transform else 'nothing'!r}, but "
                f"streams.partitions={self.settings.streams.partitions} wants {wanted!r}: set streams.partitions "
                "to the stream's, or run `utopia migrate` for a new stream"
            )
        return kv

    async def _close(self, nc: Any, server: Any) -> None:
        # Acks, naks and live notifications still buffered go out before the connection closes;
        # a server that is gone must not hold the exit up.
        with contextlib.suppress(*NATS_ERRORS):
            await nc.flush(timeout=2)
        with contextlib.suppress(*NATS_ERRORS):
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

    # -- partitions --------------------------------------------------------------------------------

    async def _balance(self, keeper: LeaseKeeper, js: Any, nc: Any, flavour: Flavour) -> None:
        interval = self.settings.ingest.lease_s / 3
        while not self._closing.is_set():
            try:
                await self._balance_once(keeper, js, nc, flavour)
            except NATS_ERRORS as exc:
                log.warning("partition leases not renewed; retrying", extra={"error": repr(exc)})
            self._stop_expired()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._changed.wait()

    async def _balance_once(self, keeper: LeaseKeeper, js: Any, nc: Any, flavour: Flavour) -> None:
        await keeper.heartbeat()
        for partition in await self._reap(keeper):
            self._forget(partition)
        for partition, running in list(self.running.items()):
            if partition not in keeper.held:  # lost earlier; its runner is still finishing
                continue
            if await keeper.renew(partition):
                running.renewed_at = time.monotonic()
            else:
                log.warning("partition lease lost; stopping it", extra={"partition": partition})
                running.stop.set()
        if self.draining:
            return
        view = await keeper.view()
        others = view.workers - {self.worker_id}
        if others:
            self._hand_on_stalled()
        total = self.settings.streams.partitions
        share = math.ceil(total / (len(others) + 1))
        active = [p for p, r in self.running.items() if not r.stop.is_set()]
        for partition in sorted(active, reverse=True)[: max(len(active) - share, 0)]:
            log.info("giving a partition back to balance the workers", extra={"partition": partition})
            self.running[partition].stop.set()
        now = time.monotonic()
        free = [
            p
            for p in range(total)
            if p not in view.taken and p not in self.running and self._retry_at.get(p, 0.0) <= now
        ]
        random.shuffle(free)  # workers starting together try different partitions first
        for partition in free[: max(share - len(active), 0)]:
            if await keeper.claim(partition):
                self._start(partition, js, nc, flavour)

    def _hand_on_stalled(self) -> None:
        """A partition that made no progress for long (its database writes fail from this host,
        say) goes to another worker, which may fare better."""
        stall_s = max(2 * self.settings.ingest.ack_wait_s, 3 * self.settings.ingest.lease_s)
        for partition, running in self.running.items():
            stalled_for = time.monotonic() - running.runner.progressed_at
            if stalled_for > stall_s and not running.stop.is_set():
                log.warning(
                    "partition stalled; handing it to another worker",
                    extra={"partition": partition, "stalled_s": round(stalled_for, 1)},
                )
                running.stalled = True
                running.stop.set()

    def _back_off(self, partition: int) -> None:
        delay = min(self._retry_delay.get(partition, self.settings.ingest.lease_s / 3) * 2, _MAX_RETRY_DELAY_S)
        self._retry_delay[partition] = delay
        self._retry_at[partition] = time.monotonic() + delay

    async def _reap(self, keeper: LeaseKeeper) -> list[int]:
        """Partitions whose runner has finished: their leases go back, the reason is logged."""
        finished = [p for p, r in self.running.items() if r.task.done()]
        for partition in finished:
            task = self.running[partition].task
            exc = None if task.cancelled() else task.exception()
            if isinstance(exc, Fenced):
                log.warning("partition taken over by another worker", extra={"partition": partition})
                self.metrics.partition_stops.labels("fenced").inc()
            elif exc is not None:
                log.error("partition stopped by an error", extra={"partition": partition, "error": repr(exc)})
                self.metrics.partition_stops.labels("error").inc()
                self._back_off(partition)
            elif self.running[partition].stalled:
                self.metrics.partition_stops.labels("stalled").inc()
                self._back_off(partition)
            else:
                self.metrics.partition_stops.labels("handed").inc()
                self._retry_delay.pop(partition, None)
            await keeper.release(partition)
        return finished

    def _start(self, partition: int, js: Any, nc: Any, flavour: Flavour) -> None:
        runner = PartitionRunner(
            self.settings, partition, self.core_factory(), self.metrics, js=js, nc=nc, flavour=flavour,
            worker_id=self.worker_id,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop), name=f"partition-{partition}")
        task.add_done_callback(lambda _task: self._changed.set())
        self.running[partition] = _Running(runner=runner, stop=stop, task=task)
        self.metrics.partitions_owned.set(len(self.running))
        log.info("partition taken", extra={"partition": partition, "consumer": runner.consumer})

    def _forget(self, partition: int) -> None:
        del self.running[partition]
        self.metrics.partitions_owned.set(len(self.running))
        for gauge in (self.metrics.consumer_pending, self.metrics.consumer_ack_pending):
            with contextlib.suppress(KeyError):
                gauge.remove(str(partition))

    def _stop_expired(self) -> None:
        """Past the lease time without a renewal the partition may already be someone else's."""
        lease = self.settings.ingest.lease_s
        for partition, running in self.running.items():
            if time.monotonic() - running.renewed_at > lease and not running.stop.is_set():
                log.warning("partition lease expired (NATS unreachable?); stopping it", extra={"partition": partition})
                running.stop.set()

    async def _stop_all(self) -> None:
        for running in self.running.values():
            running.stop.set()
        tasks = [r.task for r in self.running.values()]
        if not tasks:
            return
        # Each partition finishes within ack_wait_s and hands back the rest; this only bounds a bug.
        _, stuck = await asyncio.wait(tasks, timeout=self.settings.ingest.ack_wait_s + 30)
        if stuck:
            log.error("partitions did not stop in time", extra={"partitions": sorted(self._partition_of(stuck))})

    def _partition_of(self, tasks: set[asyncio.Task[None]]) -> list[int]:
        return [p for p, r in self.running.items() if r.task in tasks]

    # -- process-wide chores ------------------------------------------------------------------------

    def _cores(self) -> list[Core]:
        return [r.runner.core for r in self.running.values()]

    async def _upkeep(self, flavour: Flavour) -> None:
        """Partitions ahead, rollup folding and a location reload, every maintenance interval."""
        while not self._closing.is_set():
            await self._wait_or_reload(self.settings.ingest.maintenance_interval_s)
            try:
                conn = await asyncpg.connect(self.settings.database.url, timeout=10)
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("upkeep skipped: database unavailable", extra={"error": repr(exc)})
                await self._pause(self.settings.ingest.retry_max_s)
                continue
            only_reload = self.reload_locations.is_set()
            self.reload_locations.clear()
            try:
                oids, names = await fetch_locations(conn)
                for core in self._cores():
                    core.set_locations(oids, names)
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
                await _first(self.reload_locations, self._closing)

    async def _pause(self, seconds: float) -> None:
        """Sleeps, or returns at once when the worker is closing."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    async def _listen_for_locations(self) -> None:
        """`utopia locations load` notifies after its commit; reload then, not at the next upkeep."""
        while not self._closing.is_set():
            try:
                conn = await asyncpg.connect(self.settings.database.url, timeout=10)
            except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError):
                await self._pause(self.settings.ingest.retry_max_s)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_args: self.reload_locations.set())
            try:
                await _first(lost, self._closing)
            finally:
                conn.terminate()
            # A notification may have been missed while disconnected.
            self.reload_locations.set()

    async def _watch_lag(self, js: Any) -> None:
        while not self._closing.is_set():
            for partition in list(self.running):
                with contextlib.suppress(*NATS_ERRORS):
                    name = consumer_name(self.settings.ingest.consumer, partition)
                    info = await js.consumer_info(DETECTIONS_STREAM, name)
                    if partition in self.running:
                        self.metrics.consumer_pending.labels(str(partition)).set(info.num_pending or 0)
                        self.metrics.consumer_ack_pending.labels(str(partition)).set(info.num_ack_pending or 0)
            stats = [core.stats() for core in self._cores()]
            self.metrics.seen_ids.set(sum(s[0] for s in stats))
            self.metrics.seen_bytes.set(sum(s[1] for s in stats))
            await self._pause(2.0)


async def _first(*events: asyncio.Event) -> None:
    """Until any of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _end(task: asyncio.Task[None], within_s: float = 10.0) -> None:
    """Cancels `task` and waits a bounded time: its loop also ends on the closing flag."""
    task.cancel()
    _, stuck = await asyncio.wait([task], timeout=within_s)
    if stuck:
        log.error("task did not stop", extra={"task": task.get_name()})
