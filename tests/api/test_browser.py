"""A browser's EventSource (headless Chromium) receives `stats` events from the running API."""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from tests.api.conftest import make_tokens, serve
from tests.ingest.harness import make_settings
from tests.support.nats_server import NatsServer, free_port

pytestmark = pytest.mark.timeout(90)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE = """<!doctype html><title>utopia stream</title><script>
const source = new EventSource("{stream}");
source.addEventListener("stats", (event) => {{
  source.close();
  fetch("/got", {{method: "POST", body: event.data}});
}});
</script>"""


class Page(http.server.BaseHTTPRequestHandler):
    html: ClassVar[bytes] = b""
    received: ClassVar[list[bytes]] = []
    got: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.html)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append(body)
        type(self).got.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
async def test_eventsource_in_headless_chromium_receives_stats(nats_server: NatsServer, db_url: str) -> None:
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    settings = make_settings(nats_server.url, db_url, **{"api.cors_origins": [origin]})
    tokens = await make_tokens(db_url)
    async with serve(settings) as (base, _app):
        Page.html = PAGE.format(stream=f"{base}/api/v1/stream?access_token={tokens.viewer}").encode()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        profile = Path(tempfile.mkdtemp(prefix="utopia-chromium-"))
        assert CHROMIUM is not None
        browser = await asyncio.create_subprocess_exec(
            *[
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                origin + "/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert await asyncio.to_thread(Page.got.wait, 45), "the page received no stats event"
        finally:
            browser.kill()
            await browser.wait()
            server.shutdown()
            server.server_close()
            shutil.rmtree(profile, ignore_errors=True)
    stats = json.loads(Page.received[0])
    assert isinstance(stats, dict)
    assert stats, "an empty stats event"
