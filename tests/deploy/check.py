"""Checks of the converged deploy test system (run by tests/deploy/run.sh with the repo's .venv).

- the API answers GET /api/v1/health;
- every ingest worker and the edge agent serve Prometheus /metrics;
- events of the simulated camera site reach utopia.detections, and so do events written into
  the other site's FIFO (as camera software would);
- the site's NATS user may publish to its own locations only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import NoReturn

import nats
import nats.errors


def fail(message: str) -> NoReturn:
    print(f"check: {message}", file=sys.stderr)
    sys.exit(1)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(what: str, probe: object, timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()  # type: ignore[operator]
        except (OSError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(1)
    fail(f"{what}: not within {timeout_s:.0f} s (last: {last!r})")
    return None


def health(api: str) -> None:
    def probe() -> dict[str, object] | None:
        status, body = get(f"{api}/api/v1/health")
        data: dict[str, object] = json.loads(body)
        return data if status == 200 else None

    print("health:", json.dumps(wait_for("GET /api/v1/health answers 200", probe, 90)))


def metrics(ports: list[int]) -> None:
    for port in ports:
        status, body = wait_for(  # type: ignore[misc]
            f"/metrics on port {port}", lambda p=port: get(f"http://127.0.0.1:{p}/metrics"), 60
        )
        if status != 200 or "# TYPE" not in body:
            fail(f"/metrics on port {port}: status {status}")
    print("metrics: ports", ", ".join(map(str, ports)), "answer")


def psql_command(root: str, port: int) -> list[str]:
    return ["chroot", root, "runuser", "-u", "postgres", "--", "psql", "-p", str(port), "-d", "utopia", "-tAc"]


def stored(root: str, port: int) -> None:
    def probe() -> int:
        out = subprocess.run(
            [*psql_command(root, port), "SELECT count(*) FROM utopia.detections"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.strip())

    print("stored detections:", wait_for("events of site1 stored in utopia.detections", probe, 120))


def fifo_events(root: str, port: int, fifo: str, location: int, count: int = 25) -> None:
    """Write JSON lines into the site's FIFO and wait until all are stored."""
    first = time.time_ns() // 1000
    lines = [
        json.dumps(
            {
                "geographical_location_oid": location,
                "video_camera_oid": 7,
                "detection_oid": first + n,
                "item_name": "bicycle",
                "timestamp_detected": int(time.time() * 1000),
            }
        )
        for n in range(count)
    ]
    try:  # non-blocking: with no agent reading, this fails at once instead of hanging
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        fail(f"cannot write into {fifo} (is the site's agent running?): {exc}")
    with os.fdopen(fd, "w") as pipe:
        os.set_blocking(fd, True)
        pipe.write("\n".join(lines) + "\n")
    query = (
        "SELECT count(*) FROM utopia.detections"
        f" WHERE detection_oid >= {first} AND geographical_location_oid = {location}"
    )

    def probe() -> bool:
        out = subprocess.run([*psql_command(root, port), query], capture_output=True, text=True, check=True).stdout
        return int(out.strip()) == count

    wait_for(f"{count} events written into {fifo} stored", probe, 120)
    print(f"fifo: {count} events from the camera software's FIFO stored")


async def site_permissions(url: str, user: str, password: str) -> None:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, user=user, password=password, error_cb=on_error, allow_reconnect=False)
    try:
        await nc.publish("utopia.detections.1", b"[]")
        await nc.flush()
        await asyncio.sleep(0.5)
        if errors:
            fail(f"site user may not publish to its own location 1: {errors}")
        await nc.publish("utopia.detections.3", b"[]")
        await nc.flush()
        await asyncio.sleep(0.5)
        if not any("permissions violation" in e.lower() for e in errors):
            fail(f"site user published to location 3, which is not its own (errors: {errors})")
    finally:
        await nc.close()
    print("nats: the site user publishes to its own locations only")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--root", required=True, help="the core's root folder")
    parser.add_argument("--db-port", type=int, default=15432)
    parser.add_argument("--metrics-ports", default="19108,19109,19120,19121")
    parser.add_argument("--site-user", required=True)
    parser.add_argument("--site-password", required=True)
    parser.add_argument("--fifo", required=True, help="the FIFO of a site in the default mode")
    parser.add_argument("--fifo-location", type=int, required=True)
    args = parser.parse_args()
    health(args.api)
    metrics([int(p) for p in args.metrics_ports.split(",")])
    stored(args.root, args.db_port)
    fifo_events(args.root, args.db_port, args.fifo, args.fifo_location)
    asyncio.run(site_permissions(args.nats, args.site_user, args.site_password))


if __name__ == "__main__":
    main()
