"""Keyboard help, a modal over the current screen."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HelpScreen"]

HELP = """[b]Utopia dashboard — keys[/b]

  o   Overview: events/s, counters, lag, top items
  l   Location: item counts over time, its cameras
  c   Cameras: silent cameras first
  r   Rejects: dead-letter reasons
  i   Ingest: partitions, their lag and the worker owning each
  t   time range: live (15 min) / last hour / last day
  ?   this help        q   quit
  ↑ ↓ enter   move and open in tables and lists

The mouse works too: click keys in the footer, rows and lists.
The status line shows the connection; the dashboard reconnects
by itself and catches up when the API comes back.

[dim]escape or ? closes this help[/dim]"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(HELP)

    def on_click(self) -> None:
        self.dismiss()
