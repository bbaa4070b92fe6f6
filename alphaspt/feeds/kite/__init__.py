"""Zerodha Kite's live feed: the real ``kiteconnect.KiteTicker`` with a liveness watchdog,
instrument tokens from the daily instrument dump, ticks as ``Tick`` events."""

from alphaspt.feeds.kite.feed import KiteFeed, to_tick
from alphaspt.feeds.kite.instruments import InstrumentCache, KiteInstrument, dump_day
from alphaspt.feeds.kite.session import feed_credentials
from alphaspt.feeds.kite.stream import (
    MAX_CONNECTIONS,
    MAX_TOKENS_PER_CONNECTION,
    KiteStream,
    StreamConfig,
    nse_market_hours,
    plan,
)

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_TOKENS_PER_CONNECTION",
    "InstrumentCache",
    "KiteFeed",
    "KiteInstrument",
    "KiteStream",
    "StreamConfig",
    "dump_day",
    "feed_credentials",
    "nse_market_hours",
    "plan",
    "to_tick",
]
