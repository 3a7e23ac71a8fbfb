"""Connecting to NATS: credentials and TLS from `NatsSettings`, retries, and the stream check."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from utopia_edge.contract import DETECTIONS_STREAM
from utopia_edge.settings import NatsSettings, SettingsError

log = logging.getLogger("utopia_edge.connection")


class StreamMissingError(RuntimeError):
    """The DETECTIONS stream does not exist on the server: the core has not been provisioned."""


def _existing_file(settings: NatsSettings, name: str) -> str | None:
    value: str | None = getattr(settings, name)
    if value is not None and not Path(value).is_file():
        raise SettingsError(f"invalid setting nats.{name} (env UTOPIA_NATS_{name.upper()}): no such file {value}")
    return value


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """A client TLS context when a CA, a client certificate or a tls:// URL asks for one."""
    ca = _existing_file(settings, "tls_ca_file")
    cert = _existing_file(settings, "tls_cert_file")
    key = _existing_file(settings, "tls_key_file")
    wants_tls = any(url.strip().startswith(("tls://", "wss://")) for url in settings.url.split(","))
    if ca is None and cert is None and not wants_tls:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"invalid TLS settings nats.tls_ca_file/tls_cert_file/tls_key_file: {exc}") from exc
    return context


def connect_options(settings: NatsSettings, *, name: str) -> dict[str, Any]:
    """Keyword arguments for `nats.connect` (credentials, TLS, reconnect policy) from the settings."""
    if settings.password is not None and settings.user is None:
        raise SettingsError("invalid setting nats.password (env UTOPIA_NATS_PASSWORD): it needs nats.user too")
    if settings.token is not None and settings.user is not None:
        raise SettingsError("invalid settings nats.token and nats.user: give one way to authenticate, not both")
    options: dict[str, Any] = {
        "servers": [url.strip() for url in settings.url.split(",")],
        "name": name,
        "connect_timeout": settings.connect_timeout_s,
        # The client reconnects forever on its own; unsent batches wait in the outbox meanwhile.
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1.0,
    }
    if settings.user is not None:
        options["user"] = settings.user
        options["password"] = settings.password or ""
    if settings.token is not None:
        options["token"] = settings.token
    if (seed := _existing_file(settings, "nkey_seed_file")) is not None:
        options["nkeys_seed"] = seed
    if (creds := _existing_file(settings, "creds_file")) is not None:
        options["user_credentials"] = creds
    if (context := tls_context(settings)) is not None:
        options["tls"] = context
    return options


def _error_logger(every_s: float = 30.0) -> Callable[[Exception], Awaitable[None]]:
    """The client reports every failed reconnect attempt; repeats of one message are logged every 30 s.

    A closure, not a callable object: the client insists on a coroutine function.
    """
    last: dict[str, float] = {}

    async def log_error(exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        now = time.monotonic()
        if now - last.get(text, -every_s) >= every_s:
            last.clear()
            last[text] = now
            log.warning("nats: %s", text)

    return log_error


async def connect_with_backoff(
    settings: NatsSettings,
    *,
    name: str,
    backoff_min_s: float,
    backoff_max_s: float,
    disconnected_cb: Callable[[], Awaitable[None]],
    reconnected_cb: Callable[[], Awaitable[None]],
    connect: Callable[..., Awaitable[Client]] = nats.connect,
) -> Client:
    """Connect, retrying with doubling delays; the first connection may fail while the site is offline."""
    options = connect_options(settings, name=name)
    delay = backoff_min_s
    while True:
        try:
            return await connect(
                **options,
                error_cb=_error_logger(),
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
            )
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            log.warning("cannot connect to NATS at %s (%s); retrying in %.1f s", settings.url, exc or type(exc), delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, backoff_max_s)


async def check_stream(nc: Client, stream: str = DETECTIONS_STREAM) -> None:
    """Raise `StreamMissingError` if `stream` is absent: the agent has nowhere to put events."""
    try:
        await nc.jetstream().stream_info(stream)
    except nats.js.errors.NotFoundError:
        raise StreamMissingError(
            f"stream {stream} not found on the NATS server: run `utopia migrate` on the core to provision it"
        ) from None
    except nats.js.errors.ServiceUnavailableError:
        raise StreamMissingError(
            f"JetStream is not enabled on the NATS server, so stream {stream} cannot exist"
        ) from None
