"""Small asyncio helpers shared by the agent's tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def wait_within(awaitable: Awaitable[object], limit_s: float) -> bool:
    """Await with a time limit; False on timeout.

    `asyncio.timeout` rather than `asyncio.wait_for`: on Python 3.11, `wait_for` can swallow a
    cancellation that races with its own timeout, and a task that loops on it then never stops.
    """
    try:
        async with asyncio.timeout(limit_s):
            await awaitable
    except TimeoutError:
        return False
    return True
