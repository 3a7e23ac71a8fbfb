"""A small async client of the Utopia HTTP API: REST reads and the `/stream` Server-Sent Events with
reconnect and backoff. No Textual here: the screens talk to the backend only through this module."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

__all__ = ["ApiClient", "ApiError", "Connection", "SseEvent", "parse_time"]

PREFIX = "/api/v1"


class ApiError(Exception):
    """A request that failed: the API is unreachable or answered with an error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SseEvent:
    name: str
    data: Any


@dataclass(frozen=True)
class Connection:
    """Where the stream is: `state` is connecting, live, retrying or unauthorized."""

    state: str
    detail: str = ""
    retry_in_s: float | None = None


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix(PREFIX)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url + PREFIX, headers=headers, timeout=timeout_s, transport=transport
        )
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- REST ----------------------------------------------------------------------------------

    async def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = await self._http.get(path, params=query)
        except httpx.HTTPError as exc:
            raise ApiError(f"{self.base_url} unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise ApiError(f"GET {path}: HTTP {response.status_code}", response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"GET {path}: not JSON") from exc

    async def health(self) -> dict[str, Any]:
        try:
            response = await self._http.get("/health")
        except httpx.HTTPError as exc:
            raise ApiError(f"{self.base_url} unreachable: {type(exc).__name__}") from exc
        try:
            result: dict[str, Any] = response.json()
        except ValueError as exc:
            raise ApiError("GET /health: not JSON") from exc
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.get("/stats")
        return result

    async def locations(self, since: timedelta | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/locations", **self._range(since))
        return result

    async def top_items(
        self, x: int, since: timedelta | None = None, location: int | None = None
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get("/top-items", x=x, location=location, **self._range(since))
        return result

    async def timeseries(
        self, bucket: str, since: timedelta, location: int | None = None, item: str | None = None
    ) -> list[dict[str, Any]]:
        params = self._range(since) | {"bucket": bucket, "location": location, "item": item}
        result: list[dict[str, Any]] = await self.get("/timeseries", **params)
        return result

    async def cameras(self, recent_minutes: int = 5, silent_after_s: int = 60) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.get(
            "/cameras", recent_minutes=recent_minutes, silent_after_s=silent_after_s
        )
        return result

    @staticmethod
    def _range(since: timedelta | None) -> dict[str, str]:
        if since is None:
            return {}
        # A little into the future so that events committed just now are inside [from, to).
        now = datetime.now(UTC)
        return {"from": _iso(now - since), "to": _iso(now + timedelta(minutes=1))}

    # -- SSE -----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[SseEvent]:
        """One connection to `/stream`; ends when the server closes it, raises ApiError when it fails."""
        try:
            async with self._http.stream("GET", "/stream", timeout=httpx.Timeout(10.0, read=60.0)) as response:
                if response.status_code >= 400:
                    raise ApiError(f"GET /stream: HTTP {response.status_code}", response.status_code)
                name, data = "message", list[str]()
                async for line in response.aiter_lines():
                    if line == "":
                        if data:
                            yield SseEvent(name, json.loads("\n".join(data)))
                        name, data = "message", []
                    elif line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
        except httpx.HTTPError as exc:
            raise ApiError(f"stream interrupted: {type(exc).__name__}") from exc
        except json.JSONDecodeError as exc:
            raise ApiError("stream sent malformed JSON") from exc

    async def follow(self, on_connection: Callable[[Connection], None]) -> AsyncIterator[SseEvent]:
        """`/stream` for ever: reconnects with exponential backoff and reports each change of state.

        A bad token is not retried quickly (the backoff runs to its maximum)."""
        delay = self.backoff_initial_s
        while True:
            on_connection(Connection("connecting", self.base_url))
            try:
                first = True
                async for event in self.events():
                    if first:
                        on_connection(Connection("live", self.base_url))
                        delay, first = self.backoff_initial_s, False
                    yield event
                detail = "the API closed the stream"
            except ApiError as exc:
                if exc.status in (401, 403):
                    on_connection(Connection("unauthorized", "the token was refused (--token)", self.backoff_max_s))
                    await asyncio.sleep(self.backoff_max_s)
                    continue
                detail = str(exc)
            on_connection(Connection("retrying", detail, delay))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)
