"""Location: per-item counts over time as a bar chart, and the location's cameras."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from utopia_tui.client import parse_time
from utopia_tui.screens.base import DashboardScreen
from utopia_tui.screens.cameras import ago
from utopia_tui.widgets import bars, human

__all__ = ["LocationScreen", "series"]

MAX_ITEMS = 8


def series(rows: list[dict[str, Any]], bucket: str, span: timedelta, now: datetime) -> dict[str, list[float]]:
    """Counts per item on a full time axis of `bucket`s ending at `now` (missing buckets are 0)."""
    step = timedelta(minutes=1) if bucket == "minute" else timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    size = max(1, int(span / step))
    last = now.replace(second=0, microsecond=0)
    if bucket != "minute":
        last = last.replace(minute=0)
    if bucket == "day":
        last = last.replace(hour=0)
    first = last - step * (size - 1)
    out: dict[str, list[float]] = {}
    for row in rows:
        at = parse_time(str(row["bucket"]))
        if at is None:
            continue
        index = int((at - first) / step)
        if 0 <= index < size:
            out.setdefault(str(row["item_name"]), [0.0] * size)[index] += float(row["count"])
    return out


class LocationScreen(DashboardScreen):
    REFRESH_S = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, list[float]] = {}
        self.cameras: list[dict[str, Any]] = []

    def body(self) -> ComposeResult:
        with Horizontal(id="location-body"):
            yield OptionList(id="locations")
            with Vertical(id="location-main"):
                yield Static(id="chart")
                camera_table: DataTable[str | int] = DataTable(id="location-cameras", cursor_type="row")
                yield camera_table

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#locations", OptionList).border_title = "Locations"
        table = self.query_one("#location-cameras", DataTable)
        table.add_columns("camera", "last event", "recent", "status")
        table.border_title = "Cameras"

    async def reload(self) -> None:
        app = self.dashboard
        self._fill_locations()
        if app.location is None:
            return
        span, bucket = app.range.span, app.range.bucket
        rows = await app.client.timeseries(bucket, span, location=app.location)
        self.items = series(rows, bucket, span, datetime.now(UTC))
        cameras = await app.client.cameras()
        self.cameras = [c for c in cameras if c["geographical_location_oid"] == app.location]
        self.redraw()

    def _fill_locations(self) -> None:
        options = self.query_one("#locations", OptionList)
        names = self.dashboard.model.names
        wanted = [str(oid) for oid in sorted(names, key=lambda oid: names[oid])]
        if [options.get_option_at_index(i).id for i in range(options.option_count)] != wanted:
            options.clear_options()
            options.add_options([Option(names[int(oid)], id=oid) for oid in wanted])
        if self.dashboard.location is not None and str(self.dashboard.location) in wanted:
            options.highlighted = wanted.index(str(self.dashboard.location))

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None and int(event.option.id) != self.dashboard.location:
            self.dashboard.show_location(int(event.option.id))

    def redraw(self) -> None:
        app = self.dashboard
        if not self.is_mounted:
            return
        self._fill_locations()
        name = "no location yet" if app.location is None else app.model.names.get(app.location, f"#{app.location}")
        chart = self.query_one("#chart", Static)
        chart.border_title = f"{name} · {app.range.label} · per {app.range.bucket}"
        width = max(10, chart.content_size.width - 23)
        ranked = sorted(self.items.items(), key=lambda pair: (-sum(pair[1]), pair[0]))[:MAX_ITEMS]
        lines = [f"{item[:12]:<12} {bars(values, width)} {human(sum(values)):>8}" for item, values in ranked]
        chart.update("\n".join(lines) or "no detections in this range")
        table = self.query_one("#location-cameras", DataTable)
        table.clear()
        now = datetime.now(UTC)
        for camera in sorted(self.cameras, key=lambda c: (not c["silent"], c["video_camera_oid"])):
            status = "[b red]SILENT[/]" if camera["silent"] else "[green]ok[/]"
            table.add_row(camera["video_camera_oid"], ago(camera["last_event"], now), camera["recent_count"], status)
