"""The agent's counters, a stats snapshot, and Prometheus text on an optional loopback port.

Prometheus-client is not an edge dependency: the exposition format is a few lines of text, and a
camera-site box should install as little as possible.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from utopia_edge.outbox import Batch


@dataclass(slots=True)
class Snapshot:
    """What the agent reports: backlog, age of the oldest unsent event, rates and alarms."""

    backlog_events: int
    backlog_bytes: int
    oldest_unsent_age_s: float
    events_in: int
    events_acked: int
    batches_acked: int
    duplicate_batches: int
    send_rate_eps: float
    send_failures: int
    rejected_rows: int
    outbox_full: bool
    outbox_full_episodes: int
    connected: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class Stats:
    """Counters written by the agent's tasks (all on the event loop thread)."""

    events_in: int = 0
    events_acked: int = 0
    batches_acked: int = 0
    duplicate_batches: int = 0
    send_failures: int = 0
    rejected_rows: int = 0
    outbox_full: bool = False
    outbox_full_episodes: int = 0
    connected: bool = False
    # (monotonic time, events_acked) samples of the last few seconds, for the send rate.
    _samples: collections.deque[tuple[float, int]] = field(default_factory=lambda: collections.deque(maxlen=64))

    def record_acked(self, batches: Sequence[Batch], _now: float) -> None:
        self.batches_acked += len(batches)
        self.events_acked += sum(batch.events for batch in batches)

    def send_rate(self, window_s: float = 5.0) -> float:
        """Acknowledged events per second over about the last `window_s` seconds."""
        now = time.monotonic()
        self._samples.append((now, self.events_acked))
        while len(self._samples) > 2 and now - self._samples[1][0] >= window_s:
            self._samples.popleft()
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


_HELP: dict[str, tuple[str, str]] = {
    "backlog_events": ("gauge", "Events in the outbox not yet acknowledged by JetStream"),
    "backlog_bytes": ("gauge", "Encoded bytes in the outbox not yet acknowledged"),
    "oldest_unsent_age_s": ("gauge", "Age in seconds of the oldest unacknowledged event (0 when empty)"),
    "events_in": ("counter", "Events accepted from the source into the outbox"),
    "events_acked": ("counter", "Events acknowledged by JetStream"),
    "batches_acked": ("counter", "Batches (NATS messages) acknowledged by JetStream"),
    "duplicate_batches": ("counter", "Re-sent batches that JetStream dropped as duplicates"),
    "send_rate_eps": ("gauge", "Acknowledged events per second over the last seconds"),
    "send_failures": ("counter", "Times sending stopped (timeout, error, disconnect) and restarted"),
    "rejected_rows": ("counter", "Source rows rejected as invalid (not published)"),
    "outbox_full": ("gauge", "1 while the outbox is full and the source is held back"),
    "outbox_full_episodes": ("counter", "Times the outbox became full"),
    "connected": ("gauge", "1 while connected to NATS"),
}


def render_prometheus(snapshot: Snapshot, *, prefix: str = "utopia_edge_") -> str:
    lines: list[str] = []
    for name, (kind, text) in _HELP.items():
        value: float = getattr(snapshot, name)
        metric = prefix + name + ("_total" if kind == "counter" else "")
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", f"{metric} {float(value)!r}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics -> Prometheus text. Binds where told (loopback by default): no authentication."""

    def __init__(self, snapshot: Callable[[], Snapshot], host: str, port: int) -> None:
        self._snapshot = snapshot
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if path.split(b"?")[0] == b"/metrics":
                status, body = "200 OK", render_prometheus(self._snapshot()).encode()
            else:
                status, body = "404 Not Found", b"try /metrics\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
