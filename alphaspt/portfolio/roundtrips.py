"""Closed round trips (FIFO lots) from a strategy's fills, for reports and the dashboard.

The ledger books positions at average cost (what P&L and risk use); reports conventionally
match exits against the oldest open entries first. ``round_trips`` does that per symbol:
each exit fill closes the oldest open lots, a fill larger than the open position closes it
and opens a lot on the other side. Gross P&L (before charges) of each closed piece.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alphaspt.core.views import RoundTrip


@dataclass
class _Lot:
    sign: int
    quantity: int
    price: float
    ts: float


def round_trips(fills: Iterable[Mapping[str, Any]]) -> list[RoundTrip]:
    """``fills`` oldest first (``symbol``, ``side``, ``quantity``, ``price``, ``ts`` in epoch
    seconds); the closed lots in the order they closed."""
    open_lots: dict[str, deque[_Lot]] = {}
    closed: list[RoundTrip] = []
    for f in fills:
        symbol = str(f["symbol"])
        sign = 1 if f["side"] == "BUY" else -1
        qty = int(f["quantity"])
        price = float(f["price"])
        ts = float(f["ts"])
        lots = open_lots.setdefault(symbol, deque())
        while qty and lots and lots[0].sign != sign:
            lot = lots[0]
            take = min(qty, lot.quantity)
            closed.append(RoundTrip(
                symbol=symbol, side="LONG" if lot.sign > 0 else "SHORT", quantity=take,
                entry_price=lot.price, exit_price=price, entry_ts=lot.ts, exit_ts=ts,
                pnl=round((price - lot.price) * take * lot.sign, 2) + 0.0))
            lot.quantity -= take
            qty -= take
            if not lot.quantity:
                lots.popleft()
        if qty:
            lots.append(_Lot(sign, qty, price, ts))
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
