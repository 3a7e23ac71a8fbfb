"""The outbox for asyncio code: every call runs on one dedicated thread.

SQLite commits (and fsyncs with `fsync = "full"`) would otherwise stall the event loop and with it
the reading of JetStream acks. One worker thread keeps calls in submission order, so an append
issued before a seal is applied before it, and the connection is never shared between threads.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from utopia_edge.outbox import Batch, Outbox

P = ParamSpec("P")
R = TypeVar("R")


class AsyncOutbox:
    def __init__(self, outbox: Outbox, executor: ThreadPoolExecutor) -> None:
        self._outbox = outbox
        self._executor = executor

    @classmethod
    async def open(cls, **kwargs: Any) -> AsyncOutbox:
        """`Outbox(**kwargs)`, opened on the worker thread that will own it."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="utopia-edge-outbox")
        try:
            outbox = await asyncio.get_running_loop().run_in_executor(executor, functools.partial(Outbox, **kwargs))
        except BaseException:
            executor.shutdown(wait=True)
            raise
        return cls(outbox, executor)

    async def _call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        # A cancelled caller does not stop the call on the thread: it completes, in order.
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # Counters are plain ints written by the worker thread; reading them here is safe and at worst
    # one call behind, which is all that back-pressure and metrics need.
    @property
    def path(self) -> str:
        return str(self._outbox.path)

    @property
    def agent_id(self) -> str:
        return self._outbox.agent_id

    @property
    def backlog_events(self) -> int:
        return self._outbox.backlog_events

    @property
    def backlog_bytes(self) -> int:
        return self._outbox.backlog_bytes

    @property
    def sealed_batches(self) -> int:
        return self._outbox.sealed_batches

    async def append(self, groups: Sequence[tuple[int, int, bytes]], cursor: tuple[str, int] | None = None) -> int:
        return await self._call(self._outbox.append, groups, cursor)

    async def seal_due(self) -> int:
        return await self._call(self._outbox.seal_due)

    async def seal_all(self) -> int:
        return await self._call(self._outbox.seal_all)

    async def next_due(self) -> float | None:
        return await self._call(self._outbox.next_due)

    async def peek(self, after_seq: int, limit: int) -> list[Batch]:
        return await self._call(self._outbox.peek, after_seq, limit)

    async def delete(self, batches: Sequence[Batch]) -> None:
        await self._call(self._outbox.delete, batches)

    async def oldest_created(self) -> float | None:
        return await self._call(self._outbox.oldest_created)

    async def cursor(self, key: str) -> int | None:
        return await self._call(self._outbox.cursor, key)

    async def clear_cursor(self, key: str) -> None:
        await self._call(self._outbox.clear_cursor, key)

    async def close(self) -> None:
        try:
            await self._call(self._outbox.close)
        finally:
            self._executor.shutdown(wait=True)
