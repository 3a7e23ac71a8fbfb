"""Utopia's HTTP API (Litestar REST + Server-Sent Events). Routes arrive with the API issue."""
