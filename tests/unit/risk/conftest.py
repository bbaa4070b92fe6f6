"""Builders of signals, fills and limits for risk tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alphaspt.core.events import Charges, Fill, OrderType, Side, Signal, Tick
from alphaspt.core.specs import RiskProfileSpec
from alphaspt.risk import RiskEngine

SECOND = 1_000_000_000
T0 = int(datetime(2024, 6, 3, 4, 30, tzinfo=UTC).timestamp()) * SECOND
"""Monday 2024-06-03 10:00:00 IST."""
PROFILE = "default"

_counter = iter(range(1_000_000))


def limits(**kw: Any) -> RiskProfileSpec:
    return RiskProfileSpec.model_validate(kw)


def signal(
    side: Side = Side.BUY,
    quantity: int = 10,
    *,
    symbol: str = "RELIANCE",
    strategy: str = "momentum-demo",
    ref_price: float = 100.0,
    limit_price: float | None = None,
    event_id: str | None = None,
) -> Signal:
    return Signal(
        event_id=event_id or f"sig-{next(_counter)}",
        exchange_ts=T0,
        ingest_ts=0,
        strategy=strategy,
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
        limit_price=limit_price,
        ref_price=ref_price,
    )


def fill(
    side: Side,
    quantity: int,
    price: float,
    *,
    symbol: str = "RELIANCE",
    strategy: str = "momentum-demo",
    client_order_id: str = "",
    trade_id: str | None = None,
    charges: float = 0.0,
    ts: int = T0,
) -> Fill:
    return Fill(
        event_id=f"fill-{next(_counter)}",
        exchange_ts=ts,
        ingest_ts=0,
        trade_id=trade_id or f"trade-{next(_counter)}",
        client_order_id=client_order_id or f"unknown-{next(_counter)}",
        strategy=strategy,
        symbol=symbol,
        side=side,
        quantity=quantity,
        price=price,
        charges=Charges(brokerage=charges),
    )


def tick(symbol: str, price: float, ts: int = T0) -> Tick:
    return Tick(event_id=f"tick-{next(_counter)}", exchange_ts=ts, symbol=symbol, price=price)


def engine_with_prices(**prices: float) -> RiskEngine:
    engine = RiskEngine(clock=lambda: 7)
    for symbol, price in prices.items():
        engine.on_tick(tick(symbol, price))
    return engine
