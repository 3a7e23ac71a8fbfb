"""What every dashboard screen shares: the status bar, the footer and the reload and redraw hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from utopia_tui.client import ApiError
from utopia_tui.messages import ConnectionChanged, LiveUpdated, Reload
from utopia_tui.widgets import StatusBar

if TYPE_CHECKING:
    from utopia_tui.app import DashboardApp

__all__ = ["DashboardScreen"]


class DashboardScreen(Screen[None]):
    # Seconds between REST refreshes while the screen is shown (0: only on reload).
    REFRESH_S = 0.0

    @property
    def dashboard(self) -> DashboardApp:
        from utopia_tui.app import DashboardApp  # noqa: PLC0415 - the app imports the screens

        return cast(DashboardApp, self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        if self.REFRESH_S:
            self.set_interval(self.REFRESH_S, self._reload)

    def on_screen_resume(self) -> None:
        self._show_status()
        self._reload()
        self.redraw()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        self._show_status()

    def on_live_updated(self, message: LiveUpdated) -> None:
        self.redraw()

    def on_reload(self, message: Reload) -> None:
        self._reload()

    def _show_status(self) -> None:
        app = self.dashboard
        self.query_one(StatusBar).show(app.connection, app.range.label)

    def _reload(self) -> None:
        if self.is_current:
            self._fetch()

    @work(group="reload", exclusive=True)
    async def _fetch(self) -> None:
        try:
            await self.reload()
        except ApiError as exc:
            self.log.warning(f"reload failed: {exc}")

    async def reload(self) -> None:
        """Fetch what this screen shows from the API (REST)."""

    def redraw(self) -> None:
        """Redraw from the live model."""
