"""Builders for ledger events with everything but the interesting fields defaulted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alphaspt.core.events import Charges, Fill, Side

FillFactory = Callable[..., Fill]


@pytest.fixture
def make_fill() -> FillFactory:
    counter = iter(range(1, 1_000_000))

    def make(
        side: Side,
        quantity: int,
        price: float,
        *,
        symbol: str = "RELIANCE",
        strategy: str = "momo",
        trade_id: str | None = None,
        charges: Charges | None = None,
    ) -> Fill:
        n = next(counter)
        tid = trade_id or f"T{n}"
        return Fill(
            event_id=tid,
            exchange_ts=n,
            ingest_ts=n,
            trade_id=tid,
            client_order_id=f"C{n}",
            strategy=strategy,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            charges=charges or Charges(),
        )

    return make
