"""A small Server-Sent Events reader over an httpx streaming response, for the stream tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    name: str
    data: Any
    received_ms: float


@dataclass
class Reader:
    events: list[Event] = field(default_factory=list)
    comments: int = 0

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    def counted(self) -> int:
        return sum(sum(e.data["counts"]["count"]) for e in self.named("counts"))

    async def read(self, response: httpx.Response) -> None:
        """Collects events until the response ends (or the task is cancelled)."""
        name, data = "message", list[str]()
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    self.events.append(Event(name, json.loads("\n".join(data)), time.time() * 1000))
                name, data = "message", list[str]()
            elif line.startswith(":"):
                self.comments += 1
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
