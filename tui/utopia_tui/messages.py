"""The messages the app sends to its screens."""

from __future__ import annotations

from textual.message import Message

from utopia_tui.client import Connection

__all__ = ["ConnectionChanged", "LiveUpdated", "Reload"]


class LiveUpdated(Message):
    """The live model changed (a `stats` tick or a catch-up): redraw from it."""


class Reload(Message):
    """Fetch again from the API: the time range changed or the API came back."""


class ConnectionChanged(Message):
    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self.connection = connection
