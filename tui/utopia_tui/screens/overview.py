"""Overview: live events/s, the counters, lag and freshness, and the top items per location."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from utopia_tui.model import Ownership
from utopia_tui.screens.base import DashboardScreen
from utopia_tui.widgets import FitLine, counted, human

__all__ = ["OverviewScreen", "lag_variants"]


def lag_variants(stats: dict[str, Any], ownership: Ownership) -> list[str]:
    """The lag and freshness line (markup), longest first: to fit, the freshness shortens, then the lag's wording,
    and the freshness goes last.

    The lag carries a per-worker hint, "(4 partitions, 2 workers)", with partitions without owner in warning colour.
    """
    pending, ack = stats.get("pending"), stats.get("ack_pending")
    hint = ""
    if ownership.partitions:
        hint = f" ({counted(len(ownership.partitions), 'partition')}, {counted(len(ownership.workers), 'worker')}"
        hint += f", [b $warning]{len(ownership.unowned)} unowned[/])" if ownership.unowned else ")"
    if pending is None:
        lag = short = f"lag unknown{hint}"
    else:
        lag = f"lag {human(pending)} pending · {human(ack)} unacked{hint}"
        short = f"lag {human(pending)} · {human(ack)} unacked{hint}"
    since, delay = stats.get("since_last_commit_s"), stats.get("notify_delay_ms")
    notify = "" if delay is None else f" · notify {delay:.0f} ms"
    last = "no commit yet" if since is None else f"last commit {since:.1f}s ago"
    brief = "no commit yet" if since is None else f"commit {since:.1f}s ago"
    return [f"{lag} │ {last}{notify}", f"{lag} │ {last}", f"{lag} │ {brief}", f"{short} │ {brief}", lag]


class OverviewScreen(DashboardScreen):
    def body(self) -> ComposeResult:
        with Horizontal(id="overview-top"):
            with Vertical(id="rate-box"):
                yield Static(id="rate-title")
                yield Sparkline([], id="rate")
            yield Static(id="counters")
        yield FitLine(id="freshness")
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
        self.query_one("#freshness", FitLine).show(lag_variants(stats, model.ownership()))
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
