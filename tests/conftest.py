"""Session-wide test settings."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs the property tests on a fixed sequence of examples, so a landing is repeatable; locally
# they explore new examples on every run (what they find becomes a fixed regression test).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
