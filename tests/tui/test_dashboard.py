"""The dashboard against a real API with data flowing: navigation, live updates, the time range switch,
and surviving the API going away and coming back."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Static

from tests.tui.conftest import TuiStack, events_now
from tests.tui.pilot import make_app, table_rows, until
from utopia_tui.screens.cameras import CamerasScreen
from utopia_tui.screens.help import HelpScreen
from utopia_tui.screens.ingest import NO_OWNER, IngestScreen
from utopia_tui.screens.location import LocationScreen
from utopia_tui.screens.overview import OverviewScreen
from utopia_tui.screens.rejects import RejectsScreen
from utopia_tui.widgets import StatusBar

pytestmark = pytest.mark.timeout(60)


def _status(app: object) -> str:
    return str(app.screen.query_one(StatusBar).render())  # type: ignore[attr-defined]


async def test_navigation_range_and_live_updates(tui_stack: TuiStack) -> None:
    app = make_app(tui_stack.api.base, tui_stack.tokens.viewer)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "live", 10, "the stream")
        assert "live" in _status(app)
        assert isinstance(app.screen, OverviewScreen)
        # Live range (15 min): only camera 11's four recent events of the dataset.
        await until(pilot, lambda: ["Old Town", "1", "person", "4"] in table_rows(app, "#top-items"), 10, "top items")

        # New detections show up live, without a reload.
        await tui_stack.publish([events_now(2, "kite", 7, 900_000)])
        await until(pilot, lambda: ["Harbour", "1", "kite", "7"] in table_rows(app, "#top-items"), 10, "live counts")
        counters = str(app.screen.query_one("#counters", Static).render())
        assert "accepted" in counters
        assert "duplicate" in counters

        # The time range switch: the last day holds the whole dataset.
        await pilot.press("t")
        assert app.range.name == "hour"
        await pilot.press("t")
        assert app.range.name == "day"
        expected = tui_stack.data.top_items(5, location=3)
        want = [["Market Square", "1", str(expected[0]["item_name"]), f"{expected[0]['count']:,}"]]
        await until(pilot, lambda: want[0] in table_rows(app, "#top-items"), 10, "the day's top items")

        # Enter on a row opens that location (the first row: the unmatched location 4).
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LocationScreen), 5, "the location screen")
        assert app.location == 4
        await pilot.press("l")
        await until(pilot, lambda: "bicycle" in str(app.screen.query_one("#chart", Static).render()), 10, "the chart")

        await pilot.press("c")
        assert isinstance(app.screen, CamerasScreen)
        await until(pilot, lambda: len(table_rows(app, "#cameras")) > 0, 10, "cameras")
        rows = table_rows(app, "#cameras")
        # Silent cameras first: the dataset's cameras are quiet for long; camera 99 just sent the kites.
        silent = ["SILENT" in row[-1] for row in rows]
        assert silent == sorted(silent, reverse=True)
        assert any(not s for s in silent)

        await pilot.press("r")
        assert isinstance(app.screen, RejectsScreen)
        assert "rejected" in str(app.screen.query_one("#rejects-summary", Static).render())

        # Ingest: the stack's one worker owns the default single partition, updated by the `stats` events.
        await pilot.press("i")
        assert isinstance(app.screen, IngestScreen)
        await until(pilot, lambda: len(table_rows(app, "#partitions")) == 1, 10, "the partitions")
        [partition, consumer, owner, *_] = table_rows(app, "#partitions")[0]
        assert (partition, consumer) == ("0", "ingest-0")
        assert owner
        assert owner != NO_OWNER
        summary = str(app.screen.query_one("#ingest-summary", Static).render())
        assert "1 partition · 1 worker alive" in summary
        assert f"{owner}: partition 0" in summary

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, IngestScreen)

        await pilot.press("o")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("q")


async def test_survives_the_api_restarting(tui_stack: TuiStack) -> None:
    app = make_app(tui_stack.api.base, tui_stack.tokens.viewer)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "live", 10, "the stream")
        await until(pilot, lambda: "Old Town" in str(table_rows(app, "#top-items")), 10, "top items")

        await asyncio.to_thread(tui_stack.api.stop)
        await until(pilot, lambda: app.connection.state in ("retrying", "connecting"), 10, "the outage to show")
        await until(pilot, lambda: "disconnected" in _status(app), 10, "the status line")
        assert app.screen.query_one(StatusBar).has_class("down")

        # Events committed while the API is away arrive through the catch-up.
        await tui_stack.publish([events_now(3, "zeppelin", 9, 950_000)])
        await pilot.press("c")  # a screen whose reload fails while the API is down
        await pilot.press("o")
        await asyncio.to_thread(tui_stack.api.start)
        await until(pilot, lambda: app.connection.state == "live", 15, "the reconnect")
        await until(
            pilot, lambda: ["Market Square", "1", "zeppelin", "9"] in table_rows(app, "#top-items"), 10, "catch-up"
        )
        assert "live" in _status(app)
