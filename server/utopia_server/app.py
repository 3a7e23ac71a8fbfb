"""The app factory: `create_app(settings)` builds the Litestar app; its lifespan owns the asyncpg pool,
the NATS connection and the live hub, and closes them on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import nats
import nats.errors
from litestar import Litestar, Request, Response, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_503_SERVICE_UNAVAILABLE

from utopia.config import Settings
from utopia_edge.connection import connect_options
from utopia_server.auth import TokenCache, require_role
from utopia_server.hub import LiveHub
from utopia_server.metrics import ApiMetrics, metrics_middleware
from utopia_server.routes import analytics, stream, system

__all__ = ["create_app"]

log = logging.getLogger("utopia.api")
PREFIX = "/api/v1"


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    pool = await asyncpg.create_pool(
        settings.database.url, min_size=0, max_size=settings.database.pool_size, timeout=10, command_timeout=30
    )
    try:
        nc = await nats.connect(**connect_options(settings.nats, name="utopia-api"))
    except BaseException:
        await pool.close()
        raise
    hub = LiveHub(
        nc,
        app.state.metrics,
        queue=settings.api.stream_client_queue,
        interval_s=settings.api.stats_interval_s,
        consumer=settings.ingest.consumer,
    )
    app.state.update(pool=pool, nc=nc, hub=hub, tokens=TokenCache(pool))
    try:
        await hub.start()
        log.info("api ready", extra={"host": settings.api.host, "port": settings.api.port})
        yield
    finally:
        await hub.stop()
        # Notifications only: nothing to drain, so a plain close; bounded so shutdown cannot hang.
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            async with asyncio.timeout(5):
                await nc.close()
        try:
            async with asyncio.timeout(5):
                await pool.close()
        except TimeoutError:
            pool.terminate()


def _state(name: str) -> Provide:
    def provide(request: Request[Any, Any, Any]) -> Any:
        return getattr(request.app.state, name)

    return Provide(provide, sync_to_thread=False)


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    if isinstance(exc, (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)):
        # The database refused a value the request carried: the client's to fix, not a 503.
        log.info("request refused by the database", extra={"path": request.url.path, "error": repr(exc)})
        detail = f"a value in the request is not acceptable: {type(exc).__name__}"
        return Response({"status_code": 400, "detail": detail}, status_code=HTTP_400_BAD_REQUEST)
    if isinstance(exc, asyncpg.UndefinedTableError):
        detail = "the database schema is missing: run `utopia migrate`"
    else:
        detail = f"database unavailable (database.url): {type(exc).__name__}"
    log.warning("request failed on the database", extra={"path": request.url.path, "error": repr(exc)})
    return Response({"status_code": 503, "detail": detail}, status_code=HTTP_503_SERVICE_UNAVAILABLE)


def _invalid(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, object]]:
    """400 naming each bad parameter, instead of echoing the whole query string."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    named = [e for e in extra if isinstance(e, dict) and e.get("key")]
    detail = exc.detail
    if named and not detail.startswith("invalid "):
        detail = "; ".join(
            f"invalid {e.get('source', 'query')} parameter '{e['key']}': {e.get('message')}" for e in named
        )
    body: dict[str, object] = {"status_code": 400, "detail": detail}
    if named:
        body["extra"] = named
    return Response(body, status_code=HTTP_400_BAD_REQUEST)


def create_app(settings: Settings, *, keepalive_s: float = 15.0) -> Litestar:
    """The API for `settings`; connections open when the app starts (lifespan) and close when it stops."""
    api = Router(
        PREFIX,
        route_handlers=[*analytics.ROUTES, *system.ROUTES, *stream.ROUTES],
        guards=[require_role],
        security=[{"BearerToken": []}],
    )
    app = Litestar(
        route_handlers=[api],
        lifespan=[_lifespan],
        dependencies={
            "pool": _state("pool"),
            "hub": _state("hub"),
            "nc": _state("nc"),
            "tokens": _state("tokens"),
            "metrics": _state("metrics"),
            "keepalive_s": Provide(lambda: keepalive_s, sync_to_thread=False),
        },
        middleware=[metrics_middleware],
        cors_config=CORSConfig(allow_origins=list(settings.api.cors_origins)) if settings.api.cors_origins else None,
        openapi_config=OpenAPIConfig(
            title="Utopia API",
            version="1.0.0",
            path="/schema",
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")},
            ),
        ),
        exception_handlers={
            ValidationException: _invalid,
            OSError: _unavailable,
            TimeoutError: _unavailable,
            asyncpg.PostgresError: _unavailable,
            asyncpg.InterfaceError: _unavailable,
        },
        debug=False,
    )
    app.state.update(settings=settings, metrics=ApiMetrics())
    return app
