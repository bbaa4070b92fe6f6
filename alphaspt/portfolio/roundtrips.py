"""Closed round trips of a strategy's fill records, for reports and the dashboard.

The matching is the accounting core's FIFO (:class:`alphaspt.core.accounting.FifoLots`, one
per symbol); this module only reads the read model's fill records and summarises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alphaspt.core.accounting import FifoLots
from alphaspt.core.events import Side
from alphaspt.core.views import RoundTrip


@dataclass(frozen=True)
class _Execution:
    exchange_ts: int
    side: Side
    quantity: int
    price: float


def round_trips(fills: Iterable[Mapping[str, Any]]) -> list[RoundTrip]:
    """``fills`` oldest first (``symbol``, ``side``, ``quantity``, ``price``, ``ts`` in epoch
    ns); the closed lots in the order they closed, times in epoch seconds."""
    lots: dict[str, FifoLots] = {}
    closed: list[RoundTrip] = []
    for f in fills:
        symbol = str(f["symbol"])
        execution = _Execution(int(f["ts"]), Side(f["side"]), int(f["quantity"]),
                               float(f["price"]))
        for trip in lots.setdefault(symbol, FifoLots()).apply(execution):
            closed.append(RoundTrip(
                symbol=symbol, side="LONG" if trip.direction > 0 else "SHORT",
                quantity=trip.quantity, entry_price=float(trip.entry_price),
                exit_price=float(trip.exit_price), entry_ts=trip.entry_ts / 1e9,
                exit_ts=trip.exit_ts / 1e9, pnl=float(round(trip.pnl, 2)) + 0.0))
    return closed


@dataclass(frozen=True)
class TradeStats:
    round_trips: int
    wins: int
    win_rate: float | None
    """Share of closed lots with a positive P&L (``None`` before the first)."""
    gross_pnl: float


def trade_stats(trips: Iterable[RoundTrip]) -> TradeStats:
    trips = list(trips)
    wins = sum(1 for t in trips if t.pnl > 0)
    return TradeStats(
        round_trips=len(trips), wins=wins,
        win_rate=wins / len(trips) if trips else None,
        gross_pnl=round(sum(t.pnl for t in trips), 2) + 0.0)
