"""`utopia api`: the REST + Server-Sent Events API (Litestar on uvicorn), on loopback by default."""

from __future__ import annotations

import argparse
from typing import Any

from utopia.config import load


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "api", help="run the REST + SSE API (default 127.0.0.1:8080; setting api.host/api.port)"
    )
    parser.add_argument("--host", help="listen address (env UTOPIA_API_HOST; setting api.host)")
    parser.add_argument("--port", type=int, help="listen port (env UTOPIA_API_PORT; setting api.port)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings = load(args.config, overrides={"api.host": args.host, "api.port": args.port})
    # The server package is optional for the other commands, so it is imported only here.
    import uvicorn  # noqa: PLC0415

    from utopia_server import create_app  # noqa: PLC0415

    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    return 0
