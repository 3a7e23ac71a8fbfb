"""The Textual app: modes (one screen each), key bindings, the live stream worker and catch-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from utopia_tui.client import ApiClient, ApiError, Connection
from utopia_tui.messages import ConnectionChanged, LiveUpdated, Reload
from utopia_tui.model import RANGES, LiveModel, TimeRange
from utopia_tui.screens.cameras import CamerasScreen
from utopia_tui.screens.help import HelpScreen
from utopia_tui.screens.ingest import IngestScreen
from utopia_tui.screens.location import LocationScreen
from utopia_tui.screens.overview import OverviewScreen
from utopia_tui.screens.rejects import RejectsScreen

__all__ = ["DashboardApp"]

TOP_N = 5


class DashboardApp(App[None]):
    TITLE = "Utopia"
    CSS_PATH = "dashboard.tcss"
    ENABLE_COMMAND_PALETTE = False
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "overview": OverviewScreen,
        "location": LocationScreen,
        "cameras": CamerasScreen,
        "rejects": RejectsScreen,
        "ingest": IngestScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "show('overview')", "Overview"),
        Binding("l", "show('location')", "Location"),
        Binding("c", "show('cameras')", "Cameras"),
        Binding("r", "show('rejects')", "Rejects"),
        Binding("i", "show('ingest')", "Ingest"),
        Binding("t", "cycle_range", "Range"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        # Ctrl-C quits as it does for other commands (`utopia demo` then stops everything).
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, client: ApiClient, *, catch_up_s: float = 30.0) -> None:
        super().__init__()
        self.client = client
        self.model = LiveModel()
        self.range: TimeRange = RANGES[0]
        self.connection = Connection("connecting", client.base_url)
        self.location: int | None = None  # shown by the Location screen
        self.catch_up_s = catch_up_s
        self._was_live = False

    async def on_mount(self) -> None:
        await self.switch_mode("overview")
        self.run_worker(self._follow(), name="stream", group="stream")
        self.set_interval(self.catch_up_s, self.schedule_catch_up)
        self.schedule_catch_up()

    async def on_unmount(self) -> None:
        await self.client.aclose()

    # -- live data -----------------------------------------------------------------------------

    async def _follow(self) -> None:
        async for event in self.client.follow(self._on_connection):
            self.model.apply(event.name, event.data)
            if event.name == "stats":
                self.tell(LiveUpdated())

    def _on_connection(self, connection: Connection) -> None:
        self.connection = connection
        live = connection.state == "live"
        if live and not self._was_live:
            # Back after an outage (or the first time): catch up on what happened meanwhile.
            self.schedule_catch_up()
            self.tell(Reload())
        self._was_live = live
        self.tell(ConnectionChanged(connection))

    def tell(self, message: Message) -> None:
        """Sends `message` to the current screen, if there is one yet (or still)."""
        if self.screen_stack:
            self.screen.post_message(message)

    @work(group="catch-up", exclusive=True)
    async def schedule_catch_up(self) -> None:
        await self.catch_up()

    async def catch_up(self) -> None:
        """The REST baseline of the live model: location names, top items in the range, stored totals."""
        try:
            locations = await self.client.locations()
            top = await self.client.top_items(TOP_N, since=self.range.span)
            stats = await self.client.stats()
        except ApiError as exc:
            self.log.warning(f"catch-up failed: {exc}")
            return
        self.model.set_locations(locations)
        self.model.set_baseline(top)
        self.model.set_stats(stats)
        if self.location is None and self.model.names:
            self.location = min(self.model.names)
        self.tell(LiveUpdated())

    # -- actions -------------------------------------------------------------------------------

    async def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)

    def show_location(self, location: int) -> None:
        """Shows `location` on the Location screen (after the current message: safe from a screen's handler)."""
        self.location = location
        if self.current_mode == "location":
            self.tell(Reload())
        else:
            self.call_later(self.action_show, "location")

    def action_cycle_range(self) -> None:
        self.range = RANGES[(RANGES.index(self.range) + 1) % len(RANGES)]
        self.notify(f"Time range: {self.range.label}", timeout=2)
        self.schedule_catch_up()
        self.tell(ConnectionChanged(self.connection))
        self.tell(Reload())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
