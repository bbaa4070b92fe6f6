"""Shared test configuration. Server fixtures live in tests/integration/conftest.py."""

from __future__ import annotations

import os

# Tests never read a developer's settings file or environment-provided servers by accident.
os.environ.setdefault("ALPHASPT_SETTINGS_FILE", "/nonexistent/settings.toml")
