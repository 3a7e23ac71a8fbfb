"""Health (open), Prometheus metrics (open or protected per `api.metrics_public`) and token creation
(operator only)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from litestar import Response, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from utopia_server.deps import Hub, Metrics, Nats, Pool, Tokens
from utopia_server.metrics import ApiMetrics
from utopia_server.models import Check, Health, TokenCreated, TokenRequest
from utopia_server.tokens import create_token

__all__ = ["ROUTES"]


async def _database(pool: Pool) -> Check:
    try:
        async with asyncio.timeout(2.0):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return Check(ok=False, detail=f"database.url unreachable: {exc!r}")
    return Check(ok=True, detail="connected")


@get("/health", opt={"public": True}, summary="Liveness and readiness: NATS, database, ingest lag")
async def get_health(pool: Pool, hub: Hub, nc: Nats) -> Response[Health]:
    database = await _database(pool)
    nats = Check(ok=True, detail="connected") if nc.is_connected else Check(ok=False, detail="not connected; retrying")
    last = hub.last_commit_ms
    health = Health(
        status="ok" if database.ok and nats.ok else "degraded",
        nats=nats,
        database=database,
        ingest_pending=hub.pending,
        ingest_since_last_commit_s=None if last is None else max(time.time() - last / 1000, 0.0),
        ingest_partitions_unowned=[p.partition for p in hub.partitions if p.owner is None],
    )
    return Response(health, status_code=HTTP_200_OK if health.status == "ok" else HTTP_503_SERVICE_UNAVAILABLE)


@get("/metrics", opt={"metrics": True}, summary="Prometheus metrics", media_type=CONTENT_TYPE_LATEST)
async def get_metrics(metrics: Metrics) -> bytes:
    registry = metrics.registry if isinstance(metrics, ApiMetrics) else None
    return generate_latest(registry) if registry is not None else b""


@post("/tokens", opt={"role": "operator"}, status_code=HTTP_201_CREATED, summary="Create an API token (operator)")
async def post_token(pool: Pool, tokens: Tokens, data: JSONBody[TokenRequest]) -> TokenCreated:
    async with pool.acquire() as conn:
        token = await create_token(conn, data.role, data.name)
    tokens.invalidate()
    return TokenCreated(name=data.name, role=data.role, token=token)


ROUTES = [get_health, get_metrics, post_token]
