"""JSON lines on standard input, so any camera software can pipe events into the agent.

A daemon thread reads blocks and hands them to the event loop through a small bounded queue: the
thread blocks when the agent is held back (back-pressure reaches the writing process through the
pipe), and a blocked read never keeps the process from exiting on SIGTERM.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import BinaryIO

from utopia_edge.sources import Chunk, RejectReporter
from utopia_edge.sources.files import read_jsonl

_BLOCK = 1 << 16


class StdinSource:
    resume_key: str | None = None
    finite = True

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._reporter = RejectReporter("stdin")

    @property
    def name(self) -> str:
        return "stdin"

    @property
    def rejected(self) -> int:
        return self._reporter.count

    def _reader(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
        read = getattr(self._stream, "read1", self._stream.read)
        while True:
            try:
                block = read(_BLOCK)
            except (OSError, ValueError):
                block = b""
            try:
                asyncio.run_coroutine_threadsafe(queue.put(block), loop).result()
            except RuntimeError:  # the loop is gone: the agent is shutting down
                return
            if not block:
                return

    async def _lines(self) -> AsyncIterator[list[bytes]]:
        """Complete lines as they become available (the last one may lack its newline)."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        thread = threading.Thread(
            target=self._reader, args=(asyncio.get_running_loop(), queue), name="utopia-edge-stdin", daemon=True
        )
        thread.start()
        rest = b""
        while block := await queue.get():
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            if lines:
                yield lines
        if rest.strip():
            yield [rest]

    async def chunks(self, start: int = 0) -> AsyncIterator[Chunk]:
        number = 0
        async for lines in self._lines():
            chunk = Chunk()
            for position, record in read_jsonl(iter(lines), first=number + 1):
                if isinstance(record, str):
                    self._reporter(position, record)
                else:
                    chunk.add(record)
            number += len(lines)
            yield chunk
        self._reporter.summary()
