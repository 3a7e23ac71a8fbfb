"""Configuration-dependent behaviour: open metrics, CORS, a database that is down, the CLI commands."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Stack, make_tokens, serve
from tests.ingest.harness import make_settings
from tests.support.nats_server import NatsServer, free_port
from utopia.cli import main

pytestmark = pytest.mark.timeout(60)


async def test_metrics_public_and_cors(nats_server: NatsServer, db_url: str) -> None:
    settings = make_settings(
        nats_server.url, db_url, **{"api.metrics_public": True, "api.cors_origins": ["http://dash.example"]}
    )
    tokens = await make_tokens(db_url)
    async with serve(settings) as (base, _app), httpx.AsyncClient(base_url=base + "/api/v1") as http:
        assert (await http.get("/metrics")).status_code == 200
        allowed = await http.get(
            "/locations", headers={"Origin": "http://dash.example", "Authorization": f"Bearer {tokens.viewer}"}
        )
        assert allowed.headers["access-control-allow-origin"] == "http://dash.example"
        preflight = await http.options(
            "/locations",
            headers={"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers


async def test_database_down_is_reported(nats_server: NatsServer) -> None:
    settings = make_settings(nats_server.url, f"postgresql://utopia@127.0.0.1:{free_port()}/utopia")
    async with serve(settings) as (base, _app), httpx.AsyncClient(base_url=base + "/api/v1") as http:
        health = await http.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert health.json()["nats"]["ok"] is True
        assert health.json()["database"]["ok"] is False
        response = await http.get("/locations", headers={"Authorization": "Bearer utp_x"})
        assert response.status_code == 503
        assert "database.url" in response.json()["detail"]


def test_token_create_command(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UTOPIA_DATABASE_URL", stack.db_url)
    assert main(["token", "create", "--role", "operator", "--name", "ops"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("utp_")
    with stack.client(token) as client:
        assert client.post("/tokens", json={"role": "viewer"}).status_code == 201
    with pytest.raises(SystemExit):
        main(["token", "create", "--role", "admin"])
