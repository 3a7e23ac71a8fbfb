"""Small reusable widgets: the status bar and a text bar chart."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Static

from utopia_tui.client import Connection

__all__ = ["StatusBar", "bars", "human"]

_BLOCKS = " ▁▂▃▄▅▆▇█"


def bars(values: Sequence[float], width: int) -> str:
    """The last `width` values as a one-line bar chart scaled to their maximum; few values are widened."""
    tail = list(values)[-width:] if width > 0 else []
    if tail and len(tail) * 2 <= width:
        tail = [v for v in tail for _ in range(width // len(tail))]
    top = max(tail, default=0.0)
    if top <= 0:
        return "▁" * len(tail)
    return "".join(_BLOCKS[max(1, round(v / top * (len(_BLOCKS) - 1)))] if v > 0 else "▁" for v in tail)


def human(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M{unit}"
    if value >= 10_000:
        return f"{value / 1000:.1f}k{unit}"
    return f"{value:,.0f}{unit}" if value >= 100 or float(value).is_integer() else f"{value:.1f}{unit}"


class StatusBar(Static):
    """One line: connection state, API address and the time range."""

    DEFAULT_CSS = """
    StatusBar { height: 1; padding: 0 1; background: $panel; }
    StatusBar.live { color: $success; }
    StatusBar.down { color: $error; text-style: bold; }
    """

    def show(self, connection: Connection, range_label: str) -> None:
        live = connection.state == "live"
        self.set_class(live, "live")
        self.set_class(not live and connection.state != "connecting", "down")
        mark = {"live": "● live", "connecting": "○ connecting", "unauthorized": "✖ unauthorized"}.get(
            connection.state, "✖ disconnected"
        )
        detail = connection.detail
        if connection.retry_in_s is not None:
            detail = f"{detail} · retry in {connection.retry_in_s:.1f}s"
        self.update(f"{mark}  {detail}  │ range: {range_label} (t)  │ ? help")
