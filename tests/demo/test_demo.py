"""`utopia demo --headless` from a clean data folder: events flow, duplicates are counted, rejects
reach the dead-letter stream, and when it stops no process of it is left."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from utopia.demo.system import postgres_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LINE = re.compile(
    r"received (?P<received>[\d,]+)\s+stored (?P<stored>[\d,]+)\s+duplicates (?P<duplicates>[\d,]+)\s+"
    r"rejected (?P<rejected>[\d,]+) \(dead letters (?P<dead>[\d,]+)\)"
)


def demo_processes(data_dir: Path) -> list[int]:
    """Live processes started for this demo: marked in their environment or named in their command."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if state == "Z":
            continue
        marker = f"UTOPIA_DEMO_DATA_DIR={data_dir}".encode()
        if str(data_dir).encode() in cmdline or marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "demo"
    yield path
    shutil.rmtree(postgres_dir(path), ignore_errors=True)


def test_headless_demo_runs_the_pipeline_and_leaves_nothing_running(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UTOPIA_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "utopia.cli", "demo", "--headless", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert demo.stdout is not None
    summaries: list[dict[str, int]] = []
    deadline = time.monotonic() + 30
    try:
        for line in demo.stdout:
            if match := LINE.search(line):
                summaries.append({k: int(v.replace(",", "")) for k, v in match.groupdict().items()})
            if time.monotonic() > deadline:
                break
        running = demo_processes(data_dir)
        assert len(running) >= 5, "expected NATS, PostgreSQL, ingest and three edge agents"
    finally:
        demo.send_signal(signal.SIGTERM)
        rest = demo.communicate(timeout=120)[0]
    assert demo.returncode == 0
    assert "utopia demo: stopped" in rest
    assert len(summaries) >= 5
    last = summaries[-1]
    assert last["received"] > summaries[0]["received"] + 50_000, "events are not flowing at ~10,000/s"
    assert last["duplicates"] > 0
    assert last["rejected"] > 0
    assert last["dead"] > 0
    assert last["stored"] + last["duplicates"] + last["rejected"] == last["received"]
    time.sleep(1)
    assert demo_processes(data_dir) == []
