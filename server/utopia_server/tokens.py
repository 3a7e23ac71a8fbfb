"""API tokens: random bearer tokens shown once; only their SHA-256 hashes are stored.

The table comes with `utopia migrate` (migration 003); an installation without tokens refuses every
protected request with 401.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

__all__ = ["ROLES", "Role", "create_token", "fetch_hashes", "hash_token"]

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
Conn = Any  # asyncpg.Connection

PREFIX = "utp_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(conn: Conn, role: Role, name: str | None = None) -> str:
    """Stores the hash of a new token and returns the token itself (the only time it is seen)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO utopia.api_tokens (token_hash, name, role) VALUES ($1, $2, $3)",
        hash_token(token),
        name or f"{role}-{token[len(PREFIX) : len(PREFIX) + 6]}",
        role,
    )
    return token


async def fetch_hashes(conn: Conn) -> dict[str, Role]:
    """token_hash -> role of every stored token; empty when no token was ever created."""
    exists = await conn.fetchval("SELECT to_regclass('utopia.api_tokens') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT token_hash, role FROM utopia.api_tokens")
    return {r["token_hash"]: r["role"] for r in rows}
