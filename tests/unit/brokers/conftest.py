"""Order and tick builders, and a deterministic clock for the paper broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from alphaspt.brokers.base import client_order_id
from alphaspt.core.events import Order, OrderType, Side, Tick

OrderFactory = Callable[..., Order]
TickFactory = Callable[..., Tick]


@pytest.fixture
def clock() -> Callable[[], int]:
    counter: Iterator[int] = iter(range(1_000_000_000, 2_000_000_000))
    return lambda: next(counter)


@pytest.fixture
def make_order() -> OrderFactory:
    def make(
        side: Side,
        quantity: int,
        *,
        signal_id: str = "sig-1",
        symbol: str = "RELIANCE",
        order_type: OrderType = OrderType.MARKET,
        limit_price: float | None = None,
        exchange_ts: int = 100,
        strategy: str = "momo",
        coid: str | None = None,
    ) -> Order:
        cid = coid if coid is not None else client_order_id(signal_id)
        return Order(
            event_id=cid,
            exchange_ts=exchange_ts,
            ingest_ts=exchange_ts,
            client_order_id=cid,
            signal_id=signal_id,
            strategy=strategy,
            symbol=symbol,
            side=side,
            quantity=quantity,
            order_type=order_type,
            limit_price=limit_price,
        )

    return make


@pytest.fixture
def make_tick() -> TickFactory:
    def make(price: float, exchange_ts: int, *, symbol: str = "RELIANCE") -> Tick:
        return Tick(
            event_id=f"{symbol}-{exchange_ts}",
            exchange_ts=exchange_ts,
            ingest_ts=exchange_ts,
            symbol=symbol,
            price=price,
            quantity=1,
        )

    return make
