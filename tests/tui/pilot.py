"""Helpers for Pilot tests of the dashboard."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import DataTable

from utopia_tui.app import DashboardApp
from utopia_tui.client import ApiClient


def make_app(base: str, token: str) -> DashboardApp:
    return DashboardApp(ApiClient(base, token, backoff_initial_s=0.1, backoff_max_s=0.5), catch_up_s=1.0)


async def until(pilot: Pilot[None], check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def table_rows(app: DashboardApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
