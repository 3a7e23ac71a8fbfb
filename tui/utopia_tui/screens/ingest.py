"""Ingest: the partitions of the DETECTIONS stream, each with its consumer's lag and the worker that owns it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.markup import escape
from textual.widgets import DataTable, Static

from utopia_tui.model import Ownership
from utopia_tui.screens.base import DashboardScreen
from utopia_tui.widgets import counted, human

__all__ = ["NO_OWNER", "IngestScreen", "summary"]

NO_OWNER = "— none (takeover due)"


def summary(ownership: Ownership) -> str:
    """The lines above the table (markup): totals, partitions without owner, and which worker owns what."""
    if not ownership.partitions:
        return (
            "No partitions known yet.\n[dim]The API reports them in its `stats` events, "
            "once a second, when it can read the DETECTIONS consumers.[/]"
        )
    workers = ownership.workers
    unowned = ownership.unowned
    lines = [
        f"[b]{counted(len(ownership.partitions), 'partition')}[/b] · [b]{counted(len(workers), 'worker')}[/b] alive · "
        f"lag [b]{human(ownership.pending)}[/b] pending · [b]{human(ownership.ack_pending)}[/b] unacked"
    ]
    if unowned:
        verb = "has" if len(unowned) == 1 else "have"
        lines.append(f"[b $warning]takeover pending: {_numbered('partition', unowned)} {verb} no owner[/]")
    else:
        lines.append("[$success]every partition has an owner[/]")
    owns = (f"{escape(worker)}: {_numbered('partition', parts)}" for worker, parts in workers.items())
    lines.append(" · ".join(owns) if workers else "[dim]no worker holds a lease[/]")
    return "\n".join(lines)


def _numbered(noun: str, numbers: list[int]) -> str:
    """ "partition 3", "partitions 0, 2"."""
    return f"{noun}{'' if len(numbers) == 1 else 's'} {', '.join(map(str, numbers))}"


def _number(value: int) -> Text:
    return Text(f"{value:,}", justify="right")


class IngestScreen(DashboardScreen):
    def body(self) -> ComposeResult:
        yield Static(id="ingest-summary")
        table: DataTable[str | Text] = DataTable(id="partitions", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#partitions", DataTable)
        table.add_columns("partition", "consumer", "owner", "pending", "unacked", "acked seq")
        table.border_title = "Partitions of DETECTIONS (live, every second)"

    def redraw(self) -> None:
        ownership = self.dashboard.model.ownership()
        self.query_one("#ingest-summary", Static).update(summary(ownership))
        warning = f"bold {self.app.get_css_variables()['warning']}"
        table = self.query_one("#partitions", DataTable)
        cursor = table.cursor_row
        table.clear()
        for p in ownership.partitions:
            owner = Text(NO_OWNER, style=warning) if p.owner is None else Text(p.owner)
            table.add_row(
                _number(p.partition),
                Text(p.consumer),
                owner,
                _number(p.pending),
                _number(p.ack_pending),
                _number(p.acked_seq),
            )
        if ownership.partitions:
            table.move_cursor(row=min(cursor, len(ownership.partitions) - 1))
