"""Market data sources that need no broker: a seeded mock market and CSV replay."""

from alphaspt.feeds.mock import START_PRICES, MockFeed, MockFeedConfig, default_start_price
from alphaspt.feeds.replay import ReplayFeed, ReplayFormatError, parse_timestamp

__all__ = [
    "START_PRICES",
    "MockFeed",
    "MockFeedConfig",
    "ReplayFeed",
    "ReplayFormatError",
    "default_start_price",
    "parse_timestamp",
]
