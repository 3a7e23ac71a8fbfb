"""A simulated town: locations with several cameras each, a skewed item mix, optional day/night.

Knobs exercise the core's guarantees: `duplicates` re-emits earlier events with the same
`detection_oid` (upstream retries), `bad` emits invalid events that the core must dead-letter.
Bad events are published on purpose; they are what the DLQ path is tested with.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from itertools import accumulate

from utopia_edge.events import Event
from utopia_edge.sources import Chunk, Pacer

# People and vehicles dominate a street camera's view; the long tail is rare.
ITEM_MIX: tuple[tuple[str, float], ...] = (
    ("person", 40.0),
    ("car", 25.0),
    ("bicycle", 7.0),
    ("truck", 5.0),
    ("bus", 4.0),
    ("motorcycle", 4.0),
    ("dog", 4.0),
    ("van", 3.0),
    ("scooter", 2.5),
    ("cat", 1.5),
    ("bird", 1.5),
    ("stroller", 1.0),
    ("umbrella", 0.9),
    ("wheelchair", 0.5),
    ("skateboard", 0.5),
    ("horse", 0.1),
)

# detection_oids are a random 32-bit run prefix followed by a 30-bit counter: distinct runs and
# agents do not collide (unless seeded alike), and every id stays a positive int64.
_COUNTER_BITS = 30
# A tick of the paced simulator; smaller ticks cost more wake-ups for the same rate.
_TICK_S = 0.02


class Town:
    """Locations 1..n (busier downtown: Zipf-like weights) with their cameras."""

    def __init__(self, locations: int, cameras_per_location: int, rng: random.Random) -> None:
        self.locations = list(range(1, locations + 1))
        self.location_weights = list(accumulate(1.0 / (i + 1) ** 0.8 for i in range(locations)))
        self.cameras: dict[int, list[int]] = {}
        for location in self.locations:
            count = rng.randint(max(1, cameras_per_location // 2), max(1, cameras_per_location * 3 // 2))
            self.cameras[location] = [location * 1000 + j for j in range(1, count + 1)]


def day_factor(hour: float) -> float:
    """Relative activity by hour of day: a quiet night floor, a daytime hump peaking mid-afternoon."""
    if 6.0 <= hour <= 22.0:
        return 0.1 + 0.9 * math.sin(math.pi * (hour - 6.0) / 16.0)
    return 0.1


class SimulatedSource:
    resume_key: str | None = None
    rejected = 0

    def __init__(
        self,
        rate: float | None,
        *,
        count: int | None = None,
        locations: int = 20,
        cameras_per_location: int = 4,
        duplicates: float = 0.0,
        bad: float = 0.0,
        day_night: bool = False,
        day_length_s: float = 86400.0,
        seed: int | None = None,
        chunk_max: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 <= duplicates + bad <= 1.0 or duplicates < 0 or bad < 0:
            raise ValueError("duplicates and bad are fractions (0..1) whose sum is at most 1")
        self._rng = random.Random(seed)
        self._rate = rate
        self._count = count
        self.town = Town(locations, cameras_per_location, self._rng)
        self._duplicates = duplicates
        self._bad = bad
        self._day_night = day_night
        self._day_length_s = day_length_s
        self._chunk_max = chunk_max
        self._clock = clock
        self._items = [name for name, _ in ITEM_MIX]
        self._item_weights = list(accumulate(weight for _, weight in ITEM_MIX))
        self._recent: deque[Event] = deque(maxlen=2048)
        self._prefix = 0
        self._counter = 1 << _COUNTER_BITS  # forces a fresh prefix on first use
        self.emitted = 0

    @property
    def name(self) -> str:
        return "simulated town"

    @property
    def finite(self) -> bool:
        return self._count is not None

    def _next_oid(self) -> int:
        if self._counter >= 1 << _COUNTER_BITS:
            self._prefix = (self._rng.getrandbits(32) + 1) << _COUNTER_BITS
            self._counter = 0
        self._counter += 1
        return self._prefix + self._counter

    def activity(self, now: float) -> float:
        if not self._day_night:
            return 1.0
        if self._day_length_s == 86400.0:
            local = time.localtime(now)
            return day_factor(local.tm_hour + local.tm_min / 60.0)
        return day_factor((now % self._day_length_s) / self._day_length_s * 24.0)

    def generate(self, n: int) -> Chunk:
        """`n` events (originals, duplicates and bad ones in the configured mix), grouped by location."""
        rng = self._rng
        uniform = rng.random
        chunk = Chunk()
        groups = chunk.groups
        now_ms = int(self._clock() * 1000)
        town = self.town
        locations = rng.choices(town.locations, cum_weights=town.location_weights, k=n)
        items = rng.choices(self._items, cum_weights=self._item_weights, k=n)
        dup, bad, recent = self._duplicates, self._duplicates + self._bad, self._recent
        for location, item in zip(locations, items, strict=True):
            draw = uniform() if bad else 1.0
            if draw < dup and recent:
                copy = recent[int(uniform() * len(recent))]
                groups.setdefault(copy.geographical_location_oid, []).append(copy)
                continue
            cameras = town.cameras[location]
            camera = cameras[int(uniform() * len(cameras))]
            if draw < bad:
                groups.setdefault(location, []).append(self._bad_event(location, camera, item, now_ms))
                continue
            event = Event(
                geographical_location_oid=location,
                video_camera_oid=camera,
                detection_oid=self._next_oid(),
                item_name=item,
                timestamp_detected=now_ms - int(uniform() * 250),
            )
            groups.setdefault(location, []).append(event)
            if dup:
                recent.append(event)
        chunk.events = n
        self.emitted += n
        return chunk

    def _bad_event(self, location: int, camera: int, item: str, now_ms: int) -> dict[str, object]:
        """One of the ways a camera event goes wrong; the core must reject it with a reason."""
        event: dict[str, object] = {
            "geographical_location_oid": location,
            "video_camera_oid": camera,
            "detection_oid": self._next_oid(),
            "item_name": item,
            "timestamp_detected": now_ms,
        }
        kind = self._rng.randrange(6)
        if kind == 0:
            del event["detection_oid"]
        elif kind == 1:
            event["video_camera_oid"] = 0
        elif kind == 2:
            event["item_name"] = ""
        elif kind == 3:
            event["detection_oid"] = str(event["detection_oid"])
        elif kind == 4:
            event["geographical_location_oid"] = location + 1_000_000  # not the subject's location
        else:
            event["timestamp_detected"] = -1
        return event

    async def chunks(self, start: int = 0) -> AsyncIterator[Chunk]:
        if self._rate is None:
            pacer = Pacer(None)
            while (left := self._left()) != 0:
                yield self.generate(min(self._chunk_max, left))
                await pacer.wait(self.emitted)
            return
        owed = 0.0
        last = time.monotonic()
        while (left := self._left()) != 0:
            await asyncio.sleep(_TICK_S)
            now = time.monotonic()
            # Time held back by a full outbox is not made up in a burst beyond one chunk.
            owed = min(owed + self._rate * self.activity(self._clock()) * (now - last), float(self._chunk_max))
            last = now
            n = int(owed) if left < 0 else min(int(owed), left)
            if n > 0:
                owed -= n
                yield self.generate(n)

    def _left(self) -> int:
        return -1 if self._count is None else self._count - self.emitted
