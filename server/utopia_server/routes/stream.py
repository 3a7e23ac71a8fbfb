"""`GET /stream`: Server-Sent Events from the live feed (see `utopia_server.hub`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import msgspec
from litestar import Response, get
from litestar.params import Parameter
from litestar.response import Stream

from utopia_server.deps import Hub, KeepAlive
from utopia_server.hub import Client, LiveHub, frame

__all__ = ["ROUTES", "events"]

KEEPALIVE = b": keep-alive\n\n"


async def events(hub: LiveHub, client: Client, keepalive_s: float) -> AsyncGenerator[bytes, None]:
    """The frames of one client: `lagged` first when some were dropped, keep-alive comments when idle."""
    yield b"retry: 2000\n\n" + frame("stats", msgspec.json.encode(hub.latest))
    while True:
        try:
            await asyncio.wait_for(client.wake.wait(), keepalive_s)
        except TimeoutError:
            yield KEEPALIVE
            continue
        client.wake.clear()
        while client.queue or client.dropped:
            if client.dropped:
                dropped, client.dropped = client.dropped, 0
                yield frame("lagged", b'{"dropped":%d}' % dropped)
            chunk = b"".join(client.queue)
            client.queue.clear()
            if chunk:
                yield chunk


async def _stream(hub: LiveHub, detections: bool, locations: frozenset[int] | None, keepalive: float) -> Any:
    async with hub.connect(detections=detections, locations=locations) as client:
        async for chunk in events(hub, client, keepalive):
            yield chunk


@get(
    "/stream",
    summary="Server-Sent Events: stats (every stats_interval_s), counts, rejects, detections (when asked); "
    "lagged tells how many events a slow client missed",
    media_type="text/event-stream",
    opt={"token_in_query": True},
)
async def get_stream(
    hub: Hub,
    keepalive_s: KeepAlive,
    access_token: Annotated[
        str | None,
        Parameter(description="the bearer token, for clients that cannot send headers (a browser's EventSource)"),
    ] = None,
    detections: Annotated[bool, Parameter(description="also send the committed events")] = False,
    location: Annotated[
        list[int] | None, Parameter(description="detections of these geographical_location_oid only (repeatable)")
    ] = None,
) -> Response[Any]:
    locations = frozenset(location) if location else None
    return Stream(
        _stream(hub, detections, locations, keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


ROUTES = [get_stream]
