"""The edge agent: source -> durable outbox -> JetStream, and what ties their lifetimes together.

Tasks, all owned here and cancelled on the way out:
- feeder: takes chunks from the source, encodes them, waits for room in the outbox (back-pressure,
  with an alarm), appends them;
- sealer: seals batches whose linger time ran out;
- publisher: connects (with back-off), sends sealed batches and deletes them on ack;
- monitor: refreshes the age of the oldest unsent event and logs a stats line now and then.

A finite source (a file, stdin, a counted simulation) ends the agent once everything it produced
is acknowledged. A signal stops the source, seals what is open, and allows `shutdown_grace_s` to
send the rest; whatever is left stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from utopia_edge.aio import wait_within
from utopia_edge.async_outbox import AsyncOutbox
from utopia_edge.connection import StreamMissingError
from utopia_edge.events import BodyCodec, split_encode
from utopia_edge.metrics import MetricsServer, Snapshot, Stats
from utopia_edge.publisher import Publisher
from utopia_edge.settings import EdgeSettings
from utopia_edge.sources import Chunk, Source

log = logging.getLogger("utopia_edge.agent")

# While the outbox stays full, the alarm is repeated this often.
_ALARM_REPEAT_S = 30.0
_MONITOR_PERIOD_S = 1.0

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_SOURCE_ERROR = 2


class Agent:
    def __init__(self, settings: EdgeSettings, source: Source, *, name: str = "utopia-edge") -> None:
        self.settings = settings
        self.source = source
        self.name = name
        self.stats = Stats()
        self._edge = settings.edge
        self._codec = BodyCodec(settings.edge.format)
        self._stop = asyncio.Event()
        self._stops = 0
        self._opened = asyncio.Event()
        self._oldest_created: float | None = None
        self._send_rate = 0.0
        self._outbox: AsyncOutbox | None = None
        self._publisher: Publisher | None = None
        self.metrics_port: int | None = None

    # --- control and reporting ------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop gracefully (grace period to send). Second call: stop without waiting."""
        self._stops += 1
        if self._stops == 1:
            log.info("stopping: no new events; sending what is left for up to %g s", self._edge.shutdown_grace_s)
        else:
            log.warning("stopping now; unsent events stay in the outbox")
        self._stop.set()

    def snapshot(self) -> Snapshot:
        outbox = self._outbox
        oldest = self._oldest_created
        stats = self.stats
        return Snapshot(
            backlog_events=outbox.backlog_events if outbox else 0,
            backlog_bytes=outbox.backlog_bytes if outbox else 0,
            oldest_unsent_age_s=max(0.0, time.time() - oldest) if oldest is not None and outbox else 0.0,
            events_in=stats.events_in,
            events_acked=stats.events_acked,
            batches_acked=stats.batches_acked,
            duplicate_batches=stats.duplicate_batches,
            send_rate_eps=self._send_rate,
            send_failures=stats.send_failures,
            rejected_rows=self.source.rejected,
            outbox_full=stats.outbox_full,
            outbox_full_episodes=stats.outbox_full_episodes,
            connected=stats.connected,
        )

    # --- the run --------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until the source ends and all is acknowledged, or a stop is requested; returns an exit code."""
        edge = self._edge
        self._outbox = outbox = await AsyncOutbox.open(
            path=edge.outbox_path,
            fmt=edge.format,
            fsync=edge.fsync,
            batch_size=edge.batch_size,
            batch_max_bytes=edge.batch_max_bytes,
            linger_s=edge.linger_ms / 1000.0,
        )
        self._publisher = publisher = Publisher(outbox, self.settings, self.stats, name=self.name)
        if outbox.backlog_events:
            log.info("outbox %s holds %d unsent event(s) from before; sending them first", outbox.path,
                     outbox.backlog_events)  # fmt: skip
        tasks: dict[str, asyncio.Task[Any]] = {}
        metrics: MetricsServer | None = None
        started = time.monotonic()

        def spawn(name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
            tasks[name] = asyncio.create_task(coro, name=f"utopia-edge-{name}")
            return tasks[name]

        try:
            if edge.metrics_port is not None:
                metrics = MetricsServer(self.snapshot, edge.metrics_host, edge.metrics_port)
                await metrics.start()
                self.metrics_port = metrics.port
                log.info("metrics on http://%s:%d/metrics", edge.metrics_host, metrics.port)
            sending = spawn("publisher", publisher.run())
            spawn("sealer", self._seal_loop(outbox, publisher))
            spawn("monitor", self._monitor(outbox))
            feeding = spawn("feeder", self._feed(outbox, publisher))
            stopping = spawn("stop", self._stop.wait())
            await asyncio.wait({sending, feeding, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if sending.done():
                return self._publisher_outcome(sending)
            code = EXIT_OK
            if feeding.done() and not self._stop.is_set():
                code = self._feed_outcome(feeding)
                await outbox.seal_all()
                publisher.wake()
                if await self._drain(outbox, sending, until_stop=True):
                    if code == EXIT_OK and self.source.resume_key is not None:
                        await outbox.clear_cursor(self.source.resume_key)
                    return code
                # Not drained: the publisher died, or a stop request ran out the grace period.
                return self._publisher_outcome(sending) if sending.done() else code
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
            await outbox.seal_all()
            publisher.wake()
            if self._stops < 2:
                await self._drain(outbox, sending, until_stop=False)
            return code
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            if metrics is not None:
                await metrics.close()
            self._log_summary(time.monotonic() - started)
            await outbox.close()

    def _feed_outcome(self, feeding: asyncio.Task[Any]) -> int:
        exc = feeding.exception()
        if exc is None:
            log.info("%s finished; waiting until JetStream acknowledged every event", self.source.name)
            return EXIT_OK
        log.error("%s failed: %s", self.source.name, exc)
        return EXIT_SOURCE_ERROR

    def _publisher_outcome(self, sending: asyncio.Task[Any]) -> int:
        exc = sending.exception()
        if isinstance(exc, StreamMissingError):
            log.error("%s", exc)
        else:
            log.error("sending to NATS failed: %r", exc)
        return EXIT_FATAL

    async def _drain(self, outbox: AsyncOutbox, sending: asyncio.Task[Any], *, until_stop: bool) -> bool:
        """Wait until the outbox is empty. until_stop: as long as needed (a stop request switches to the
        grace period); else within the grace period. False if something is left."""
        assert self._publisher is not None
        deadline = None if until_stop else time.monotonic() + self._edge.shutdown_grace_s
        while outbox.backlog_events > 0 and not sending.done():
            if deadline is None and self._stop.is_set():
                if self._stops > 1:
                    return False
                deadline = time.monotonic() + self._edge.shutdown_grace_s
            remaining = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if remaining <= 0:
                return False
            await wait_within(self._publisher.progress(), remaining)
        return outbox.backlog_events == 0

    # --- tasks ----------------------------------------------------------------------------------

    async def _feed(self, outbox: AsyncOutbox, publisher: Publisher) -> None:
        key = self.source.resume_key
        start = (await outbox.cursor(key) or 0) if key is not None else 0
        if start:
            log.info("%s: resuming after record %d (the earlier records are already in the outbox)",
                     self.source.name, start)  # fmt: skip
        async for chunk in self.source.chunks(start):
            groups = self._encode(chunk)
            await self._admit(outbox, publisher, chunk.events, sum(len(body) for _, _, body in groups))
            cursor = (key, chunk.cursor) if key is not None and chunk.cursor is not None else None
            if groups or cursor is not None:
                if await outbox.append(groups, cursor):
                    publisher.wake()
                self._opened.set()
            self.stats.events_in += chunk.events

    def _encode(self, chunk: Chunk) -> list[tuple[int, int, bytes]]:
        edge = self._edge
        return [
            (location, n, body)
            for location, events in chunk.groups.items()
            for n, body in split_encode(self._codec, events, edge.batch_size, edge.batch_max_bytes)
        ]

    async def _admit(self, outbox: AsyncOutbox, publisher: Publisher, events: int, nbytes: int) -> None:
        """Return once the outbox has room for the chunk; holds the source back (never drops) meanwhile."""
        edge = self._edge

        def fits() -> bool:
            backlog = outbox.backlog_events
            return backlog == 0 or (
                backlog + events <= edge.max_backlog_events and outbox.backlog_bytes + nbytes <= edge.max_backlog_bytes
            )

        if fits():
            return
        self.stats.outbox_full = True
        self.stats.outbox_full_episodes += 1
        held = time.monotonic()
        alarm_at = held
        try:
            while not fits():
                if time.monotonic() >= alarm_at:
                    log.warning(
                        "ALARM outbox full: %d events, %d bytes (limits %d events, %d bytes); holding back %s "
                        "until JetStream acknowledges; nothing is dropped. Check the link to NATS at %s",
                        outbox.backlog_events, outbox.backlog_bytes, edge.max_backlog_events, edge.max_backlog_bytes,
                        self.source.name, self.settings.nats.url,
                    )  # fmt: skip
                    alarm_at += _ALARM_REPEAT_S
                await wait_within(publisher.progress(), 1.0)
        finally:
            self.stats.outbox_full = False
        log.warning("outbox has room again after %.1f s; %s resumed", time.monotonic() - held, self.source.name)

    async def _seal_loop(self, outbox: AsyncOutbox, publisher: Publisher) -> None:
        linger_s = self._edge.linger_ms / 1000.0
        while True:
            due = await outbox.next_due()
            if due is None:
                await self._opened.wait()
                self._opened.clear()
                continue
            delay = due + linger_s - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if await outbox.seal_due():
                publisher.wake()

    async def _monitor(self, outbox: AsyncOutbox) -> None:
        interval = self._edge.stats_interval_s
        next_log = time.monotonic() + interval
        while True:
            self._oldest_created = await outbox.oldest_created()
            self._send_rate = self.stats.send_rate()
            if interval and time.monotonic() >= next_log:
                next_log += interval
                fields = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in self.snapshot().as_dict().items())  # fmt: skip
                log.info("stats %s", fields)
            await asyncio.sleep(_MONITOR_PERIOD_S)

    def _log_summary(self, elapsed: float) -> None:
        stats = self.stats
        left = self._outbox.backlog_events if self._outbox else 0
        log.info(
            "summary: %d events in, %d acknowledged (%d duplicate batches dropped by JetStream) in %.1f s; "
            "%d bad rows; %d events left in the outbox",
            stats.events_in, stats.events_acked, stats.duplicate_batches, elapsed, self.source.rejected, left,
        )  # fmt: skip
