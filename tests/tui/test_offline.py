"""Behaviour that needs no servers: mouse, a refused token, an API that is not there, and the command."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from textual.widgets._footer import FooterKey  # Textual exports no public name for the footer keys

from tests.tui.fake_api import FakeApi
from tests.tui.pilot import until
from utopia_tui.app import DashboardApp
from utopia_tui.client import ApiClient
from utopia_tui.screens.cameras import CamerasScreen
from utopia_tui.screens.location import LocationScreen
from utopia_tui.widgets import StatusBar

pytestmark = pytest.mark.timeout(30)


async def test_mouse_clicks_footer_keys_and_list_options() -> None:
    app = DashboardApp(FakeApi().client(), catch_up_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: bool(app.model.names), 5, "the fake API")
        key = next(k for k in app.screen.query(FooterKey) if k.key == "c")
        await pilot.click(key)
        await until(pilot, lambda: isinstance(app.screen, CamerasScreen), 5, "the cameras screen")
        key = next(k for k in app.screen.query(FooterKey) if k.key == "l")
        await pilot.click(key)
        await until(pilot, lambda: isinstance(app.screen, LocationScreen), 5, "the location screen")
        assert app.location == 1
        await pilot.click("#locations", offset=(2, 1))  # the first option: Harbour
        await until(pilot, lambda: app.location == 2, 5, "a click on a location")


async def test_a_refused_token_shows_in_the_status_line() -> None:
    refuse = httpx.MockTransport(lambda request: httpx.Response(401, json={"detail": "bad token"}))
    app = DashboardApp(ApiClient("http://fake", "wrong", transport=refuse, backoff_max_s=0.2))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "unauthorized", 5, "the refusal")
        await until(pilot, lambda: "unauthorized" in str(app.screen.query_one(StatusBar).render()), 5, "status")


async def test_no_api_shows_disconnected_and_keeps_trying() -> None:
    app = DashboardApp(ApiClient("http://127.0.0.1:9", None, backoff_initial_s=0.05, backoff_max_s=0.1))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "retrying", 5, "the first failure")
        status = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "disconnected" in str(status.render()), 5, "the status line")
        assert status.has_class("down")
        await pilot.press("c", "r", "t", "o")  # screens still work, their fetches fail quietly
        assert app.connection.state in ("retrying", "connecting")


def test_the_command_is_registered_and_imports_textual_lazily() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "utopia.cli", "dashboard", "--help"], capture_output=True, text=True, check=True
    )
    assert "--api URL" in out.stdout
    assert "--token T" in out.stdout
    probe = "import sys, utopia.commands.dashboard; print('textual' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"
