"""What a strategy's portfolio looks like to readers: the shape of the Redis read model.

Pure data (msgspec structs), shared by the portfolio ledger that computes it
(:mod:`alphaspt.portfolio.ledger`), the Redis writer and reader (:mod:`alphaspt.core.cache`)
and the API. Money is rounded to paise by whoever builds a view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec


class PositionView(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    quantity: int
    avg_price: float
    last_price: float
    realised_pnl: float
    unrealised_pnl: float


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """The P&L and counts a strategy and the totals both carry."""

    realised_pnl: float = 0.0
    unrealised_pnl: float = 0.0
    charges: float = 0.0
    net_pnl: float = 0.0
    gross_exposure: float = 0.0
    orders: int = 0
    fills: int = 0
    rejections: int = 0
    updated_at: float = 0.0


SUMMARY_FIELDS: Final = tuple(f for f in Summary.__struct_fields__ if f != "updated_at")


class StrategyView(Summary, frozen=True, kw_only=True):
    name: str
    mode: str = "Paper"
    state: str = "Running"
    positions: tuple[PositionView, ...] = ()


class TotalsView(Summary, frozen=True, kw_only=True):
    strategies: int = 0


def money(x: float) -> float:
    """Rupees rounded to paise (and never ``-0.0``)."""
    return round(x, 2) + 0.0


def totals_of(views: Sequence[StrategyView]) -> TotalsView:
    """The sum of the (rounded) strategy views, so totals equal what the views show."""
    return TotalsView(
        strategies=len(views),
        realised_pnl=money(sum(v.realised_pnl for v in views)),
        unrealised_pnl=money(sum(v.unrealised_pnl for v in views)),
        charges=money(sum(v.charges for v in views)),
        net_pnl=money(sum(v.net_pnl for v in views)),
        gross_exposure=money(sum(v.gross_exposure for v in views)),
        orders=sum(v.orders for v in views),
        fills=sum(v.fills for v in views),
        rejections=sum(v.rejections for v in views),
        updated_at=max((v.updated_at for v in views), default=0.0),
    )
