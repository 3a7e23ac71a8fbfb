"""Utopia's terminal dashboard (Textual); it reads only through the HTTP API (`utopia_tui.client`)."""

from __future__ import annotations

__all__ = ["run"]


def run(api_url: str, token: str | None) -> int:
    """Runs the dashboard in this terminal until the user quits; returns an exit code."""
    from utopia_tui.app import DashboardApp  # noqa: PLC0415 - keep `import utopia_tui` light
    from utopia_tui.client import ApiClient  # noqa: PLC0415

    DashboardApp(ApiClient(api_url, token)).run()
    return 0
