"""Rejects: dead-letter reasons with counts, from the live feed, and the rejected totals."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from utopia_tui.screens.base import DashboardScreen
from utopia_tui.widgets import human

__all__ = ["RejectsScreen"]


class RejectsScreen(DashboardScreen):
    def body(self) -> ComposeResult:
        yield Static(id="rejects-summary")
        table: DataTable[str | int] = DataTable(id="rejects", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#rejects", DataTable)
        table.add_columns("reason", "count", "last seen", "example")

    def redraw(self) -> None:
        model = self.dashboard.model
        rate = float(model.stats.get("rejected_per_s") or 0.0)
        reasons = model.reasons()
        note = "" if reasons else "\n[dim]No reasons received yet: they arrive as `rejects` events of the stream.[/]"
        self.query_one("#rejects-summary", Static).update(
            f"rejected: [b]{human(model.total('rejected'))}[/b] in total, {human(rate)}/s now; "
            f"{sum(r.count for _, r in reasons)} since this dashboard started{note}"
        )
        table = self.query_one("#rejects", DataTable)
        table.clear()
        now = time.time()
        for reason, entry in reasons:
            age = now - entry.last_seen
            table.add_row(reason, entry.count, "just now" if age < 10 else f"{age:.0f}s ago", entry.example[:60])
