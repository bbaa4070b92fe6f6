"""Builders of ticks and features for strategy tests."""

from __future__ import annotations

from datetime import UTC, datetime

from alphaspt.core.events import Features, Tick

T0 = int(datetime(2024, 6, 3, 4, 30, tzinfo=UTC).timestamp()) * 1_000_000_000
"""2024-06-03 10:00:00 IST."""
SECOND = 1_000_000_000


def fixed_clock() -> int:
    return 42


def make_tick(
    price: float,
    i: int,
    *,
    symbol: str = "RELIANCE",
    quantity: int = 0,
    volume: int = 0,
    ts: int | None = None,
) -> Tick:
    return Tick(
        event_id=f"{symbol}-t{i}",
        exchange_ts=T0 + i * SECOND if ts is None else ts,
        ingest_ts=0,
        symbol=symbol,
        price=price,
        quantity=quantity,
        volume=volume,
    )


def make_features(
    i: int,
    *,
    price: float = 100.0,
    ema_fast: float = 100.0,
    ema_slow: float = 100.0,
    zscore: float = 0.0,
    symbol: str = "RELIANCE",
) -> Features:
    return Features(
        event_id=f"f-{symbol}-{i}",
        exchange_ts=T0 + i * SECOND,
        ingest_ts=0,
        symbol=symbol,
        price=price,
        tick_id=f"{symbol}-t{i}",
        count=i + 2,
        ret=0.0,
        ema_fast=ema_fast,
        ema_slow=ema_slow,
        mean=price,
        std=1.0,
        zscore=zscore,
        vwap=price,
        volatility=0.0,
    )
