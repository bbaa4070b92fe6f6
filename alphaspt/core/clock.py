"""Time helpers every layer shares: the IST trading day of a timestamp."""

from __future__ import annotations

from typing import Final

IST_OFFSET_SECONDS: Final = 5 * 3600 + 30 * 60
"""India Standard Time is UTC+05:30 all year."""
NS_PER_SECOND: Final = 1_000_000_000
NS_PER_DAY: Final = 86_400 * NS_PER_SECOND


def ist_day(ts_ns: int) -> int:
    """The IST calendar day of an epoch-nanosecond timestamp, as days since 1970-01-01."""
    return (ts_ns // NS_PER_SECOND + IST_OFFSET_SECONDS) // 86_400


def ist_day_start(day: int) -> int:
    """Epoch nanoseconds of 00:00 IST on ``day`` (days since 1970-01-01)."""
    return day * NS_PER_DAY - IST_OFFSET_SECONDS * NS_PER_SECOND
