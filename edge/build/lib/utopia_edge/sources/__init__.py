"""Where events come from: a simulated town, a file, or standard input.

A source yields `Chunk`s: events already grouped by location (a batch is per location), with a
cursor for sources that can resume after a crash (the outbox commits it with the events).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from utopia_edge.events import Event

log = logging.getLogger("utopia_edge.sources")

# Per-row reports beyond this many are only counted, so a broken file cannot flood the log.
MAX_REPORTED_ROWS = 100


@dataclass(slots=True)
class Chunk:
    """Events grouped by location; `cursor` = records of the source consumed so far (None: not resumable)."""

    groups: dict[int, list[object]] = field(default_factory=dict)
    events: int = 0
    cursor: int | None = None

    def add(self, event: Event) -> None:
        self.groups.setdefault(event.geographical_location_oid, []).append(event)
        self.events += 1


class Source(Protocol):
    """What the agent needs from a source."""

    @property
    def name(self) -> str: ...

    @property
    def resume_key(self) -> str | None:
        """Identity under which the outbox keeps this source's cursor, or None if it cannot resume."""

    @property
    def finite(self) -> bool:
        """True if the source ends (the agent then exits once everything is acknowledged)."""

    @property
    def rejected(self) -> int:
        """Invalid records seen (reported, not published)."""

    def chunks(self, start: int = 0) -> AsyncIterator[Chunk]:
        """Chunks from record `start` on (the saved cursor of a resumed source)."""


class Pacer:
    """Holds a source to `rate` events per second (None: as fast as the outbox takes them)."""

    def __init__(self, rate: float | None) -> None:
        self._rate = rate
        self._start = time.monotonic()

    async def wait(self, emitted: int) -> None:
        if self._rate is None:
            # Yield anyway, so acks and sealing run between chunks of a flat-out source.
            await asyncio.sleep(0)
            return
        delay = self._start + emitted / self._rate - time.monotonic()
        await asyncio.sleep(max(0.0, delay))


class RejectReporter:
    """Reports bad records with their position, then only counts them."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.count = 0

    def __call__(self, position: str, reason: str) -> None:
        self.count += 1
        if self.count <= MAX_REPORTED_ROWS:
            log.warning("%s %s: bad row skipped: %s", self.origin, position, reason)
        elif self.count == MAX_REPORTED_ROWS + 1:
            log.warning("%s: more bad rows; only counting them from now on", self.origin)

    def summary(self) -> None:
        if self.count:
            log.warning("%s: %d bad row(s) skipped, the rest published", self.origin, self.count)
