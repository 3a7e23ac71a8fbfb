"""Overview: live events/s, the counters, lag and freshness, and the top items per location."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from utopia_tui.screens.base import DashboardScreen
from utopia_tui.widgets import human

__all__ = ["OverviewScreen"]


class OverviewScreen(DashboardScreen):
    def body(self) -> ComposeResult:
        with Horizontal(id="overview-top"):
            with Vertical(id="rate-box"):
                yield Static(id="rate-title")
                yield Sparkline([], id="rate")
            yield Static(id="counters")
        yield Static(id="freshness")
        table: DataTable[str | int] = DataTable(id="top-items", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#top-items", DataTable)
        table.add_columns("location", "#", "item", "count")
        table.border_title = "Top items per location (enter: open location)"

    def redraw(self) -> None:
        model = self.dashboard.model
        stats = model.stats
        rate = float(stats.get("received_per_s") or 0.0)
        self.query_one("#rate-title", Static).update(
            f"[b]events/s[/b] {human(rate)}  (stored {human(float(stats.get('stored_per_s') or 0.0))}/s)"
        )
        spark = self.query_one("#rate", Sparkline)
        spark.data = list(model.rates) or [0.0]
        self.query_one("#counters", Static).update(
            "\n".join(
                f"{label:<11}[b]{human(model.total(key)):>9}[/b]"
                for label, key in (
                    ("accepted", "stored"),
                    ("duplicate", "duplicates"),
                    ("rejected", "rejected"),
                    ("unmatched", "unmatched"),
                )
            )
        )
        pending, ack = stats.get("pending"), stats.get("ack_pending")
        since, delay = stats.get("since_last_commit_s"), stats.get("notify_delay_ms")
        lag = "unknown" if pending is None else f"{human(pending)} pending · {human(ack)} unacked"
        fresh = "no commit yet" if since is None else f"last commit {since:.1f}s ago"
        notify = "" if delay is None else f" · notify {delay:.0f} ms"
        self.query_one("#freshness", Static).update(f"lag {lag} │ {fresh}{notify}")
        self._fill_top()

    def _fill_top(self) -> None:
        table = self.query_one("#top-items", DataTable)
        rows = self.dashboard.model.top(5)
        cursor = table.cursor_row
        table.clear()
        for _, name, rank, item, count in rows:
            table.add_row(name if rank == 1 else "", rank, item, f"{count:,}")
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        rows = self.dashboard.model.top(5)
        if event.cursor_row >= len(rows):
            return
        self.dashboard.show_location(rows[event.cursor_row][0])
