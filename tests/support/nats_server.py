"""A real nats-server for tests (see `utopia.embedded.nats`) and helpers to provision and read
the DETECTIONS stream the way the tests need."""

from __future__ import annotations

import time

from utopia.embedded.nats import NatsCluster, NatsServer, NatsServerError, free_port, nats_server_binary
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
