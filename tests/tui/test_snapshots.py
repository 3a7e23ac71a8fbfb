"""Snapshots of each screen at 80x24 over a fixed API (tests/tui/fake_api.py): the look, compared as SVG.

UTOPIA_UPDATE_SNAPSHOTS=1 writes them anew; review the SVGs (they open in a browser) before committing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from tests.tui.fake_api import FakeApi
from tests.tui.pilot import until
from utopia_tui.app import DashboardApp
from utopia_tui.screens.help import HelpScreen

pytestmark = pytest.mark.timeout(30)
SNAPSHOTS = Path(__file__).parent / "snapshots"


def _loaded(app: DashboardApp, name: str) -> bool:
    """The screen shows its data (the fake API answers at once, but a busy machine is slow)."""
    if name == "help":
        return isinstance(app.screen, HelpScreen)
    if name == "location":
        return "person" in str(app.screen.query_one("#chart", Static).render())
    table = {"overview": "#top-items", "cameras": "#cameras", "rejects": "#rejects", "ingest": "#partitions"}[name]
    return app.screen.query_one(table, DataTable).row_count > 0


SCREENS = {"overview": "", "location": "l", "cameras": "c", "rejects": "r", "ingest": "i", "help": "question_mark"}


@pytest.mark.parametrize("name", list(SCREENS))
async def test_screen(name: str) -> None:
    keys = SCREENS[name]
    app = DashboardApp(FakeApi().client(), catch_up_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "live" and bool(app.model.names), 5, "the fake API")
        if keys:
            await pilot.press(keys)
        await until(pilot, lambda: _loaded(app, name), 5, f"the {name} screen's data")
        await pilot.pause(0.2)
        await pilot.wait_for_scheduled_animations()
        svg = app.export_screenshot(title=name)
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("UTOPIA_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg)
    assert path.exists(), f"no snapshot {path.name}: UTOPIA_UPDATE_SNAPSHOTS=1 writes it (review it, then commit)"
    assert svg == path.read_text(), f"{name} looks different: UTOPIA_UPDATE_SNAPSHOTS=1 to accept, then review"
