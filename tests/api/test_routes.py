"""Every route of the contract against a known dataset ingested by a real worker; auth and validation."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import Stack
from tests.api.dataset import LOCATIONS

pytestmark = pytest.mark.timeout(120)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _get(stack: Stack, path: str, **params: Any) -> Any:
    with stack.client(stack.tokens.viewer) as client:
        response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_health_is_open(stack: Stack) -> None:
    response = httpx.get(stack.base + "/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["nats"]["ok"]
    assert body["database"]["ok"]


def test_top_items_match_the_dataset(stack: Stack) -> None:
    rng = {"from": _iso(stack.data.start), "to": _iso(stack.data.end + timedelta(seconds=1))}
    for x in (1, 2, 5):
        assert _get(stack, "/top-items", x=x, **rng) == stack.data.top_items(x)
    assert _get(stack, "/top-items", x=3, location=2, **rng) == stack.data.top_items(3, location=2)
    # Ties (location 1: bicycle and bus; location 3: car, dog, person) are ranked by item_name.
    ranks = [r["item_name"] for r in _get(stack, "/top-items", x=5, location=3, **rng)]
    assert ranks == ["bus", "bicycle", "car", "dog", "person"]


def test_timeseries_per_hour(stack: Stack) -> None:
    rng = {"from": _iso(stack.data.start), "to": _iso(stack.data.end + timedelta(hours=1))}
    body = _get(stack, "/timeseries", bucket="hour", **rng)
    got = {
        (datetime.fromisoformat(r["bucket"]), r["geographical_location_oid"], r["item_name"]): r["count"] for r in body
    }
    assert got == dict(stack.data.hourly())
    body = _get(stack, "/timeseries", bucket="hour", location=1, item="car", **rng)
    assert sum(r["count"] for r in body) == sum(stack.data.hourly(1, "car").values())
    assert {r["item_name"] for r in body} == {"car"}


def test_locations_with_counts(stack: Stack) -> None:
    body = _get(stack, "/locations")
    counts = {oid: sum(1 for r in stack.data.rows if r.location == oid) for oid in LOCATIONS}
    assert body == [
        {"geographical_location_oid": oid, "geographical_location": name, "count": counts[oid]}
        for oid, name in sorted(LOCATIONS.items())
    ]


def test_cameras(stack: Stack) -> None:
    body = {c["video_camera_oid"]: c for c in _get(stack, "/cameras", recent_minutes=30, silent_after_s=900)}
    assert set(body) == {r.camera for r in stack.data.rows}
    for camera, status in body.items():
        last = max(r.ts for r in stack.data.rows if r.camera == camera)
        assert datetime.fromisoformat(status["last_event"]) == last
        assert status["silent"] is (camera != 11)
    assert body[11]["recent_count"] >= 4
    assert body[41]["geographical_location"] is None


def test_detections_pages_cover_everything_once(stack: Stack) -> None:
    expected = stack.data.ordered(location=1)
    rng = {"from": _iso(stack.data.start), "to": _iso(stack.data.end + timedelta(seconds=1))}
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"location": 1, "limit": 7, **rng}
        if cursor:
            params["cursor"] = cursor
        page = _get(stack, "/detections", **params)
        assert len(page["items"]) <= 7
        seen += [d["detection_oid"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r.oid for r in expected]
    first = _get(stack, "/detections", limit=1, **rng)["items"][0]
    assert first["geographical_location"] == LOCATIONS.get(first["geographical_location_oid"])


def test_stats(stack: Stack) -> None:
    body = _get(stack, "/stats")
    assert body["stored"]["stored"] == len(stack.data.rows)
    assert body["stored"]["duplicates"] == stack.data.duplicates
    assert body["stored"]["unmatched"] == sum(1 for r in stack.data.rows if r.location == 4)
    assert body["live"]["pending"] == 0


def test_stats_show_each_partition_with_its_lag_and_owner(stack: Stack) -> None:
    deadline = time.monotonic() + 10
    while not (body := _get(stack, "/stats"))["live"]["partitions"]:
        assert time.monotonic() < deadline, "no partitions in /stats"
        time.sleep(0.2)
    [partition] = body["live"]["partitions"]  # the stack runs one partition
    [consumer] = body["stored"]["consumers"]
    assert partition["partition"] == 0
    assert partition["consumer"] == consumer["consumer"] == "ingest-0"
    assert (partition["pending"], partition["ack_pending"]) == (0, 0)
    assert partition["acked_seq"] == len(stack.data.messages)
    # The lease in NATS and the claim in the database name the same worker.
    assert partition["owner"]
    assert partition["owner"] == consumer["owner"]
    assert consumer["owner_epoch"] >= 1
    assert _get(stack, "/health")["ingest_partitions_unowned"] == []


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/top-items", {}, "x"),
        ("/top-items", {"x": 0}, "x"),
        ("/top-items", {"x": 100_000}, "x"),
        ("/top-items", {"x": "many"}, "x"),
        ("/top-items", {"x": 3, "from": "yesterday"}, "from"),
        ("/top-items", {"x": 3, "to": "2020-13-01"}, "to"),
        ("/top-items", {"x": 3, "from": "2026-01-02T00:00Z", "to": "2026-01-01T00:00Z"}, "from"),
        ("/top-items", {"x": 3, "from": "2020-01-01T00:00Z", "to": "2026-01-01T00:00Z"}, "from"),
        ("/top-items", {"x": 3, "location": -1}, "location"),
        ("/timeseries", {"bucket": "week"}, "bucket"),
        ("/timeseries", {"bucket": "minute", "from": "2026-01-01T00:00Z", "to": "2026-02-01T00:00Z"}, "from"),
        ("/detections", {"cursor": "not-a-cursor"}, "cursor"),
        ("/detections", {"limit": 0}, "limit"),
        ("/cameras", {"recent_minutes": 0}, "recent_minutes"),
    ],
)
def test_bad_parameters_are_400_naming_them(stack: Stack, path: str, params: dict[str, Any], named: str) -> None:
    with stack.client(stack.tokens.viewer) as client:
        response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert f"'{named}'" in detail
    assert "?" not in detail


@pytest.mark.parametrize("path", ["/top-items?x=1", "/locations", "/cameras", "/detections", "/stats", "/timeseries"])
def test_protected_routes_need_a_token(stack: Stack, path: str) -> None:
    with stack.client() as client:
        missing = client.get(path)
    with stack.client("utp_wrong") as client:
        wrong = client.get(path)
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"


def test_viewer_cannot_create_tokens_operator_can(stack: Stack) -> None:
    with stack.client(stack.tokens.viewer) as client:
        assert client.post("/tokens", json={"role": "viewer"}).status_code == 403
    with stack.client(stack.tokens.operator) as client:
        response = client.post("/tokens", json={"role": "viewer", "name": "kiosk"})
        assert response.status_code == 201, response.text
        assert client.post("/tokens", json={"role": "root"}).status_code == 400
    token = response.json()["token"]
    with stack.client(token) as client:
        assert client.get("/locations").status_code == 200


def test_metrics_protected_by_default_and_schema_served(stack: Stack) -> None:
    assert httpx.get(stack.base + "/api/v1/metrics").status_code == 401
    with stack.client(stack.tokens.viewer) as client:
        text = client.get("/metrics").text
    assert 'utopia_api_requests_total{method="GET",route="/api/v1/top-items"' in text
    assert "utopia_api_sse_clients" in text
    schema = httpx.get(stack.base + "/schema/openapi.json").json()
    assert {"/api/v1/top-items", "/api/v1/stream", "/api/v1/health"} <= set(schema["paths"])


def test_a_token_name_the_database_cannot_store_is_a_400(stack: Stack) -> None:
    # Found by the schemathesis test: a NUL in the name used to come back as a 503.
    with stack.client(stack.tokens.operator) as client:
        for name in ["a\u0000b", "", "x" * 201]:
            response = client.post("/tokens", json={"role": "viewer", "name": name})
            assert response.status_code == 400, (name, response.text)
