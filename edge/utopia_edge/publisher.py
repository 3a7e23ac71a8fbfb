"""Sends sealed batches from the outbox to JetStream, several in flight, and deletes them on ack.

Acks are collected on one wildcard reply subscription (the JetStream request/reply protocol:
`PUB subject reply` answered with a PubAck on `reply`), so many publishes are outstanding at once;
awaiting each ack in turn caps the client at a few thousand messages per second. The client's
own `publish_async` is not used because its futures never time out and leak a slot when a publish
fails, which is exactly what happens during an outage.

On any failure (no ack in time, an API error, no responders, a dropped connection) the publisher
stops sending, lets the in-flight batches settle, backs off, waits for the connection, and starts
again from the oldest batch still in the outbox: re-sent batches carry the same `Nats-Msg-Id` and
bytes, so JetStream's duplicate window drops those that had already been stored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from utopia_edge.aio import wait_within
from utopia_edge.async_outbox import AsyncOutbox
from utopia_edge.connection import check_stream, connect_with_backoff
from utopia_edge.contract import HEADER_CONTENT_TYPE, HEADER_MSG_ID
from utopia_edge.metrics import Stats
from utopia_edge.outbox import Batch
from utopia_edge.settings import EdgeSettings

log = logging.getLogger("utopia_edge.publisher")

_STATUS_HEADER = "Status"
_NO_RESPONDERS = "503"


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_decode_ack = msgspec.json.Decoder(_PubAck).decode


class SendFailedError(RuntimeError):
    """A batch was not acknowledged; everything unacknowledged is re-sent after a back-off."""


class Publisher:
    def __init__(self, outbox: AsyncOutbox, settings: EdgeSettings, stats: Stats, *, name: str) -> None:
        self._outbox = outbox
        self._settings = settings
        self._edge = settings.edge
        self._stats = stats
        self._name = name
        self._sealed = asyncio.Event()
        self._progress = asyncio.Event()
        self._pending: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count()
        self._reply_prefix = ""
        self._closing = False

    def wake(self) -> None:
        """New batches were sealed."""
        self._sealed.set()

    async def progress(self) -> None:
        """Wait until some batches were acknowledged (and deleted from the outbox)."""
        await self._progress.wait()

    def _pulse(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def run(self) -> None:
        """Connect and send until cancelled; raises `StreamMissingError` if the core is not provisioned."""
        nc = await connect_with_backoff(
            self._settings.nats,
            name=self._name,
            backoff_min_s=self._edge.backoff_min_s,
            backoff_max_s=self._edge.backoff_max_s,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        try:
            if nc.max_payload < self._edge.batch_max_bytes:
                log.warning(
                    "edge.batch_max_bytes (%d) exceeds the server's max_payload (%d): large batches will be refused;"
                    " lower edge.batch_max_bytes",
                    self._edge.batch_max_bytes,
                    nc.max_payload,
                )
            await self._check_stream(nc)
            self._reply_prefix = nc.new_inbox() + "."
            await nc.subscribe(self._reply_prefix + "*", cb=self._on_reply)
            self._stats.connected = nc.is_connected
            log.info("connected to NATS at %s; sending from outbox %s", self._settings.nats.url, self._outbox.path)
            await self._send_forever(nc)
        finally:
            self._stats.connected = False
            for future in self._pending.values():
                future.cancel()
            self._pending.clear()
            self._closing = True
            await nc.close()

    async def _on_disconnected(self) -> None:
        self._stats.connected = False
        if not self._closing:
            log.warning("disconnected from NATS; unsent events stay in the outbox until it is back")

    async def _on_reconnected(self) -> None:
        self._stats.connected = True
        log.info("reconnected to NATS")

    async def _check_stream(self, nc: Client) -> None:
        delay = self._edge.backoff_min_s
        while True:
            try:
                await check_stream(nc)
                return
            except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.NoRespondersError) as exc:
                log.warning("cannot look up the stream yet (%s); retrying in %.1f s", exc or type(exc), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._edge.backoff_max_s)

    async def _send_forever(self, nc: Client) -> None:
        delay = self._edge.backoff_min_s
        while True:
            try:
                await self._pump(nc)
            except SendFailedError as exc:
                self._stats.send_failures += 1
                log.warning(
                    "sending stopped: %s; re-sending from the oldest unacknowledged batch in %.1f s", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._edge.backoff_max_s)
                while not nc.is_connected:
                    self._stats.connected = False
                    await asyncio.sleep(self._edge.backoff_min_s)
                self._stats.connected = True
                continue

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._reply_prefix) :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def _publish(self, nc: Client, batch: Batch) -> asyncio.Future[Msg]:
        token = str(next(self._tokens))
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        headers = {HEADER_MSG_ID: batch.batch_id, HEADER_CONTENT_TYPE: batch.content_type}
        try:
            await nc.publish(batch.subject, batch.payload, reply=self._reply_prefix + token, headers=headers)
        except nats.errors.Error as exc:
            self._pending.pop(token, None)
            raise SendFailedError(f"publish of batch {batch.batch_id} failed: {exc or type(exc).__name__}") from exc
        return future

    async def _pump(self, nc: Client) -> None:
        """Send from the oldest batch on; returns never, raises `SendFailedError` once in-flight settled."""
        loop = asyncio.get_running_loop()
        window = self._edge.max_in_flight
        inflight: dict[asyncio.Future[Msg], tuple[Batch, float]] = {}
        cursor = 0
        failure: str | None = None
        try:
            while True:
                if failure is None and nc.is_connected and len(inflight) < window:
                    self._sealed.clear()
                    for batch in await self._outbox.peek(cursor, window - len(inflight)):
                        try:
                            inflight[await self._publish(nc, batch)] = (batch, loop.time() + self._edge.ack_timeout_s)
                        except SendFailedError as exc:
                            failure = str(exc)
                            break
                        cursor = batch.seq
                if not inflight:
                    if failure is not None:
                        raise SendFailedError(failure)
                    if nc.is_connected:  # idle: wake on a newly sealed batch
                        await wait_within(self._sealed.wait(), 0.25)
                    else:  # the client is reconnecting; the sealed flag stays set meanwhile
                        await asyncio.sleep(0.1)
                    continue
                failure = await self._settle(inflight, failure, room=failure is None and len(inflight) < window)
        finally:
            for future in inflight:
                future.cancel()

    async def _settle(
        self, inflight: dict[asyncio.Future[Msg], tuple[Batch, float]], failure: str | None, *, room: bool
    ) -> str | None:
        """Wait for acks (or a new batch while the window has room); delete what was acknowledged."""
        loop = asyncio.get_running_loop()
        waiters: set[asyncio.Future[object]] = set(inflight)  # type: ignore[arg-type]
        wake: asyncio.Task[bool] | None = None
        if room:
            wake = asyncio.ensure_future(self._sealed.wait())
            waiters.add(wake)  # type: ignore[arg-type]
        timeout = max(0.0, min(deadline for _, deadline in inflight.values()) - loop.time())
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if wake is not None:
                wake.cancel()
        acked: list[Batch] = []
        now = loop.time()
        for future, (batch, deadline) in list(inflight.items()):
            if future.done():
                del inflight[future]
                problem = self._check_ack(batch, future.result())
                if problem is None:
                    acked.append(batch)
                else:
                    failure = failure or problem
            elif deadline <= now:
                del inflight[future]
                future.cancel()
                failure = failure or f"no ack for batch {batch.batch_id} within {self._edge.ack_timeout_s:g} s"
        if acked:
            await self._outbox.delete(acked)
            self._stats.record_acked(acked)
            self._pulse()
        return failure

    def _check_ack(self, batch: Batch, msg: Msg) -> str | None:
        """None if JetStream stored (or already had) the batch, else why not."""
        if msg.headers and msg.headers.get(_STATUS_HEADER) == _NO_RESPONDERS:
            return f"no stream answered for {batch.subject} (is stream DETECTIONS provisioned and JetStream up?)"
        try:
            ack = _decode_ack(msg.data)
        except msgspec.DecodeError as exc:
            return f"unreadable ack for batch {batch.batch_id}: {exc}"
        if ack.error is not None:
            return f"JetStream refused batch {batch.batch_id}: {ack.error.description} (code {ack.error.code})"
        if ack.duplicate:
            self._stats.duplicate_batches += 1
        return None
