"""The TimescaleDB test server: PGlite (PostgreSQL 17 + TimescaleDB, WASM) behind our wire bridge.

`tests/timescale_bridge/bridge.mjs` needs node >= 20 and `npm ci --prefix tests/timescale_bridge`.
Without them the timescaledb group is skipped, unless UTOPIA_REQUIRE_TIMESCALE=1 (CI), which turns
the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BRIDGE_DIR = Path(__file__).resolve().parents[1] / "timescale_bridge"


def _unavailable(reason: str) -> None:
    if os.environ.get("UTOPIA_REQUIRE_TIMESCALE") == "1":
        pytest.fail(f"TimescaleDB bridge required but unavailable: {reason}")
    pytest.skip(reason)


class TimescaleBridge:
    """One PGlite database behind a loopback port, for the whole test session."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            _unavailable("node is not installed")
        if not (BRIDGE_DIR / "node_modules" / "@unni-craftsman" / "pglite").exists():
            _unavailable(f"run `npm ci --prefix {BRIDGE_DIR}` to install PGlite with TimescaleDB")
        self.proc = subprocess.Popen(
            [str(node), "bridge.mjs", "0"], cwd=BRIDGE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed once PGlite and the extension are up
        if not line:
            self.proc.wait(5)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"timescale bridge failed to start: {err[-2000:]}")
        self.port = int(json.loads(line)["port"])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
