"""Risk-profile fields of the stage tests that stamp events with the wall clock."""

from __future__ import annotations

from typing import Any

ALL_DAY: dict[str, Any] = {"tradingWindow": {"start": "00:00", "end": "23:59:59"},
                           "misCutoff": "23:59:59"}
"""Open all day with no MIS cut-off, so that the tests pass whatever the hour they run at
(CI at 16:07 IST once refused every MIS order as past the default 15:20 cut-off)."""
