"""Small reusable widgets and text helpers: the status bar, a line that fits its width, a text bar chart."""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import Static

from utopia_tui.client import Connection

__all__ = ["FitLine", "StatusBar", "bars", "counted", "human"]

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


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1: "1 worker", "2 workers"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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


class FitLine(Static):
    """One line of markup that shows the first of its variants (longest first) that fits its width."""

    DEFAULT_CSS = """
    FitLine { height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.variants: list[str] = []

    def show(self, variants: Sequence[str]) -> None:
        self.variants = list(variants)
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        width = self.content_size.width
        fits = (v for v in self.variants if width <= 0 or Content.from_markup(v).cell_length <= width)
        self.update(next(fits, self.variants[-1] if self.variants else ""))
