"""The market rules a process uses, from its settings (``Settings.market``)."""

from __future__ import annotations

from functools import lru_cache

from alphaspt.core.config import MarketConfig
from alphaspt.market.calendar import TradingCalendar, load_calendar
from alphaspt.market.instruments import Instruments, load_instruments


@lru_cache(maxsize=4)
def calendar_from(config: MarketConfig) -> TradingCalendar | None:
    """The configured trading calendar (None when ``market.calendar`` is unset)."""
    if config.calendar is None:
        return None
    return load_calendar(config.calendar, start=config.calendar_start,
                         overrides=config.calendar_overrides)


@lru_cache(maxsize=4)
def instruments_from(config: MarketConfig) -> Instruments | None:
    """The configured instruments (None when ``market.instruments_file`` is unset)."""
    if config.instruments_file is None:
        return None
    return load_instruments(config.instruments_file)
