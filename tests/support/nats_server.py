"""A real nats-server for tests (see `utopia.embedded.nats`) and helpers to provision and read
the DETECTIONS stream the way the tests need."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import TracebackType

from utopia.embedded.nats import NatsServer, NatsServerError, free_port, nats_server_binary
from utopia_edge.contract import DETECTIONS_STREAM, DETECTIONS_SUBJECTS

__all__ = [
    "NatsCluster",
    "NatsServer",
    "NatsServerError",
    "create_detections_stream",
    "free_port",
    "nats_server_binary",
    "read_stream",
]


async def create_detections_stream(url: str, *, duplicate_window_s: float = 120.0) -> None:
    """The DETECTIONS stream as `utopia migrate` provisions it (file storage, a duplicate window)."""
    import nats  # noqa: PLC0415 - only tests that provision streams need the client
    from nats.js.api import StorageType, StreamConfig  # noqa: PLC0415

    nc = await nats.connect(servers=url.split(","))
    try:
        config = StreamConfig(
            name=DETECTIONS_STREAM,
            subjects=[DETECTIONS_SUBJECTS],
            storage=StorageType.FILE,
            duplicate_window=duplicate_window_s,
        )
        await nc.jetstream().add_stream(config)
    finally:
        await nc.close()


async def read_stream(
    url: str, stream: str = DETECTIONS_STREAM, *, within_s: float = 30.0
) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message of `stream` as (subject, headers, payload), in stream order."""
    import nats  # noqa: PLC0415
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: PLC0415

    nc = await nats.connect(servers=url.split(","))
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        total = info.state.messages
        out: list[tuple[str, dict[str, str], bytes]] = []
        if total == 0:
            return out
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
        sub = await js.pull_subscribe("", stream=stream, config=config)
        deadline = time.monotonic() + within_s
        while len(out) < total and time.monotonic() < deadline:
            for msg in await sub.fetch(batch=min(1000, total - len(out)), timeout=5):
                out.append((msg.subject, dict(msg.headers or {}), msg.data))
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


class NatsCluster:
    """Three (or `size`) nats-server processes with JetStream, routed to each other on loopback.

    Nodes can be stopped, killed and restarted one by one; `url` lists them all, as clients of a
    cluster are configured.
    """

    def __init__(self, root: Path, size: int = 3) -> None:
        cluster_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
        self.nodes = [
            NatsServer(
                root / f"n{index}",
                extra_args=(
                    "--server_name", f"n{index}",
                    "--cluster_name", "utopia-test",
                    "--cluster", f"nats://127.0.0.1:{cluster_ports[index]}",
                    "--routes", routes,
                ),
            )
            for index in range(size)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self) -> NatsCluster:
        """Starts every node; await `wait_for_jetstream` before creating streams."""
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.close()
            raise
        return self

    async def wait_for_jetstream(self, within_s: float = 30.0) -> None:
        """Until the JetStream meta group has a leader (streams can be created)."""
        import nats  # noqa: PLC0415

        deadline = time.monotonic() + within_s
        while True:
            try:
                nc = await nats.connect(servers=self.url.split(","), connect_timeout=1, max_reconnect_attempts=1)
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
