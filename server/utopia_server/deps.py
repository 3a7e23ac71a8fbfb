"""Names of the values the app injects into handlers (see `create_app`); each lives in `app.state`."""

from __future__ import annotations

from typing import Any

from litestar.di import NamedDependency

__all__ = ["Hub", "KeepAlive", "Metrics", "Nats", "Pool", "Tokens"]

Pool = NamedDependency[Any]  # asyncpg.Pool
Nats = NamedDependency[Any]  # nats.aio.client.Client
Hub = NamedDependency[Any]  # utopia_server.hub.LiveHub
Metrics = NamedDependency[Any]  # utopia_server.metrics.ApiMetrics
Tokens = NamedDependency[Any]  # utopia_server.auth.TokenCache
KeepAlive = NamedDependency[float]
