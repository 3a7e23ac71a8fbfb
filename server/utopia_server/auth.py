"""Bearer-token authentication and role guards: 401 for a missing or unknown token, 403 for a role
too weak for the route. `/health` (and `/metrics` when `api.metrics_public`) is open."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from utopia_server.tokens import Role, fetch_hashes, hash_token

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = ["TokenCache", "require_role"]

_RANK: dict[Role, int] = {"viewer": 1, "operator": 2}
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class TokenCache:
    """The stored token hashes, re-read from the database at most every `ttl_s` seconds."""

    def __init__(self, pool: Any, ttl_s: float = 5.0) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self.miss_reload_s = 1.0
        self._hashes: dict[str, Role] = {}
        self._loaded_at = -float("inf")
        self._lock = asyncio.Lock()

    async def role_of(self, token: str) -> Role | None:
        digest = hash_token(token)
        age = time.monotonic() - self._loaded_at
        # An unknown token re-reads the table (at most once a second), so a new token works at once.
        if age > self.ttl_s or (digest not in self._hashes and age > self.miss_reload_s):
            await self._reload(self._loaded_at)
        return self._hashes.get(digest)

    def invalidate(self) -> None:
        self._loaded_at = -float("inf")

    async def _reload(self, seen: float) -> None:
        async with self._lock:
            if self._loaded_at != seen:
                return  # another request reloaded meanwhile
            async with self.pool.acquire() as conn:
                self._hashes = await fetch_hashes(conn)
            self._loaded_at = time.monotonic()


def _is_public(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> bool:
    if handler.opt.get("public"):
        return True
    return bool(handler.opt.get("metrics")) and connection.app.state.settings.api.metrics_public


async def require_role(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: the route's `opt["role"]` (default viewer) needs a bearer token of that role or higher."""
    if _is_public(connection, handler):
        return
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header and handler.opt.get("token_in_query"):
        # A browser's EventSource cannot send headers; the stream also takes ?access_token=.
        scheme, token = "bearer", connection.query_params.get("access_token", "")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException(
            detail="missing bearer token: send 'Authorization: Bearer <token>' (create one with `utopia token create`)",
            headers=_CHALLENGE,
        )
    role = await connection.app.state.tokens.role_of(token.strip())
    if role is None:
        raise NotAuthorizedException(detail="unknown or revoked token", headers=_CHALLENGE)
    needed: Role = handler.opt.get("role", "viewer")
    if _RANK[role] < _RANK[needed]:
        raise PermissionDeniedException(detail=f"this route needs the {needed} role; the token has {role}")
    connection.state.role = role
