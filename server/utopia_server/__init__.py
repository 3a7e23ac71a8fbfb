"""Utopia HTTP API: Litestar REST and Server-Sent Events over the core's storage and live feed."""

from utopia_server.app import create_app

__all__ = ["create_app"]
