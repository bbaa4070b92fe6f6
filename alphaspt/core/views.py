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
    risk_profile: str = ""
    """The bound RiskProfile ('' when unknown to the writer)."""
    max_daily_loss: float | None = None
    """The profile's limits, for the dashboard's limit-use bars (``None``: unknown)."""
    max_gross_exposure: float | None = None
    kill_switch: bool = False
    """The bound profile's kill switch is on."""


class WorkerView(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's last heartbeat in the read model (``workers:<id>``)."""

    worker: str
    """``<stage>`` or ``strategy-runner/<strategy>``."""
    stage: str
    strategy: str = ""
    ready: bool = False
    alive: bool = False
    reason: str | None = None
    lag: int = 0
    started_at: float = 0.0
    """Epoch seconds when the process started."""
    starts: int = 0
    """Processes that have started under this worker id (a crash loop counts up)."""
    updated_at: float = 0.0

    def status(self, now: float, *, stale_after: float = 10.0) -> tuple[str, str]:
        """``(status, why)``: ``down`` without a heartbeat for ``stale_after`` s, ``failing``
        with a reason, ``restarting`` when it started again in the last minute, else ``ok``
        (``starting`` before it is ready)."""
        if now - self.updated_at > stale_after:
            return "down", f"no heartbeat for {now - self.updated_at:.0f} s"
        if self.reason:
            return "failing", self.reason
        if self.starts > 1 and now - self.started_at < 60:
            ago = now - self.started_at
            return "restarting", f"started {self.starts} times; last {ago:.0f} s ago"
        if not self.ready:
            return "starting", "not ready yet"
        return "ok", ""


class PricePoint(msgspec.Struct, frozen=True):
    """One price per symbol per second of exchange time, for the price chart."""

    t: float
    p: float


class RoundTrip(msgspec.Struct, frozen=True, kw_only=True):
    """A closed FIFO lot: entry fill(s) matched against exit fill(s) of one symbol."""

    symbol: str
    side: str
    """``LONG`` or ``SHORT``."""
    quantity: int
    entry_price: float
    exit_price: float
    entry_ts: float
    exit_ts: float
    pnl: float
    """Gross P&L of the lot (before charges)."""


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
