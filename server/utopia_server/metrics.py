"""Prometheus metrics of one API process, on a registry of its own (no process globals)."""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ApiMetrics", "metrics_middleware"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "utopia_api_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "utopia_api_request_seconds",
            "Time to the response headers, by route template",
            ["route"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.sse_clients = Gauge("utopia_api_sse_clients", "Connected /stream clients", registry=r)
        self.sse_dropped = Counter(
            "utopia_api_sse_dropped_events", "Events dropped for /stream clients that read too slowly", registry=r
        )
        self.live_messages = Counter(
            "utopia_api_live_messages", "utopia.live.* notifications received, by kind", ["kind"], registry=r
        )
        self.nats_up = Gauge("utopia_api_nats_connected", "1 while connected to NATS", registry=r)


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Counts each request by its route template and times it to the response headers."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        metrics: ApiMetrics = scope["litestar_app"].state.metrics
        route = scope.get("path_template") or "unmatched"
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            metrics.requests.labels(scope["method"], route, str(status)).inc()

    return middleware
