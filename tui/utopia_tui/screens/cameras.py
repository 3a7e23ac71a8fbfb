"""Cameras: every camera with its last event and recent rate; silent cameras first, highlighted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from utopia_tui.client import parse_time
from utopia_tui.screens.base import DashboardScreen

__all__ = ["CamerasScreen", "ago", "ordered"]

RECENT_MINUTES = 5


def ago(text: str | None, now: datetime) -> str:
    at = parse_time(text)
    if at is None:
        return "never"
    seconds = max((now - at).total_seconds(), 0.0)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def ordered(cameras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Silent cameras first, then by location and camera."""
    return sorted(cameras, key=lambda c: (not c["silent"], c["geographical_location_oid"], c["video_camera_oid"]))


class CamerasScreen(DashboardScreen):
    REFRESH_S = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.cameras: list[dict[str, Any]] = []

    def body(self) -> ComposeResult:
        yield Static(id="cameras-summary")
        table: DataTable[str | int] = DataTable(id="cameras", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#cameras", DataTable)
        table.add_columns("camera", "location", "last event", "/min", "status")

    async def reload(self) -> None:
        self.cameras = ordered(await self.dashboard.client.cameras(recent_minutes=RECENT_MINUTES))
        self.redraw()

    def redraw(self) -> None:
        silent = sum(1 for c in self.cameras if c["silent"])
        self.query_one("#cameras-summary", Static).update(
            f"{len(self.cameras)} cameras, [b red]{silent} silent[/] (no event for 60 s); "
            f"rate over the last {RECENT_MINUTES} min"
        )
        table = self.query_one("#cameras", DataTable)
        table.clear()
        now = datetime.now(UTC)
        for camera in self.cameras:
            name = camera.get("geographical_location") or f"#{camera['geographical_location_oid']}"
            rate = f"{camera['recent_count'] / RECENT_MINUTES:.1f}"
            if camera["silent"]:
                row = [f"[b red]{camera['video_camera_oid']}[/]", f"[red]{name}[/]", ago(camera["last_event"], now)]
                table.add_row(*row, rate, "[b red]SILENT[/]")
            else:
                table.add_row(camera["video_camera_oid"], name, ago(camera["last_event"], now), rate, "[green]ok[/]")
