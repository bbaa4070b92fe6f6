"""Zerodha Kite Connect: the live broker, the account's order limits, the access token."""

from alphaspt.brokers.kite.broker import KiteBroker
from alphaspt.brokers.kite.limits import AccountLimiter
from alphaspt.brokers.kite.tokens import (
    KITE_TOKEN_FILE,
    AccessToken,
    FileTokenStore,
    StaticToken,
    TokenStore,
)

__all__ = ["KITE_TOKEN_FILE", "AccessToken", "AccountLimiter", "FileTokenStore", "KiteBroker",
           "StaticToken", "TokenStore"]
