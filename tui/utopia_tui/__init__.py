"""Utopia's terminal dashboard (Textual). Screens arrive with the dashboard issue."""
