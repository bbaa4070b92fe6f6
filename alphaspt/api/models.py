"""Typed response models of the read API (what OpenAPI publishes).

The read model in Redis is written by the portfolio manager (see :mod:`alphaspt.core.cache`);
these models are the API's contract, converted from the cache's msgspec views.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from alphaspt.core.cache import PositionView, StrategyView, TotalsView

_OUT = ConfigDict(frozen=True, extra="forbid")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx produced on purpose: a human-readable ``detail``."""

    model_config = _OUT

    detail: str


class Position(BaseModel):
    model_config = _OUT

    symbol: str
    quantity: int = Field(description="Net quantity; negative when short.")
    avg_price: float
    last_price: float
    realised_pnl: float
    unrealised_pnl: float

    @classmethod
    def of(cls, view: PositionView) -> Position:
        """The API's model of the read model's view: the same fields, validated."""
        return cls.model_validate(msgspec.to_builtins(view))


class Strategy(BaseModel):
    """One strategy's state, positions and P&L (in rupees)."""

    model_config = _OUT

    name: str
    mode: str = Field(description="Paper or Live.")
    state: str = Field(description="Running, Paused, Stopped, ...")
    positions: list[Position]
    realised_pnl: float
    unrealised_pnl: float
    charges: float
    net_pnl: float = Field(description="realised + unrealised - charges")
    gross_exposure: float
    orders: int
    fills: int
    rejections: int
    updated_at: float = Field(description="Epoch seconds of the last update.")
    risk_profile: str = Field(default="", description="The bound RiskProfile.")
    max_daily_loss: float | None = Field(
        default=None, description="The profile's maxDailyLoss (rupees), for limit use.")
    max_gross_exposure: float | None = Field(
        default=None, description="The profile's maxGrossExposure (rupees), for limit use.")
    kill_switch: bool = Field(default=False, description="The profile's kill switch is on.")

    @classmethod
    def of(cls, view: StrategyView) -> Strategy:
        """The API's model of the read model's view: the same fields, validated."""
        return cls.model_validate(msgspec.to_builtins(view))


class StrategyList(BaseModel):
    model_config = _OUT

    items: list[Strategy]


class PnlPoint(BaseModel):
    model_config = _OUT

    t: float = Field(description="Epoch seconds.")
    pnl: float = Field(description="Net P&L at that time.")


class PnlHistory(BaseModel):
    model_config = _OUT

    strategy: str
    points: list[PnlPoint]


class PricePoint(BaseModel):
    model_config = _OUT

    t: float = Field(description="Exchange time, epoch seconds.")
    p: float = Field(description="Last traded price in that second.")


class PriceHistory(BaseModel):
    model_config = _OUT

    symbol: str
    points: list[PricePoint]


class RoundTrip(BaseModel):
    """A closed FIFO lot (entry matched against exit) of one symbol."""

    model_config = _OUT

    symbol: str
    side: str = Field(description="LONG or SHORT.")
    quantity: int
    entry_price: float
    exit_price: float
    entry_ts: float = Field(description="Epoch seconds of the entry fill.")
    exit_ts: float = Field(description="Epoch seconds of the exit fill.")
    pnl: float = Field(description="Gross P&L of the lot, before charges.")


class Trades(BaseModel):
    """Round trips from the strategy's recent fills (the fill list is capped)."""

    model_config = _OUT

    strategy: str
    fills: int = Field(description="Fills the round trips were computed from.")
    round_trips: int
    wins: int
    win_rate: float | None = Field(description="wins / round_trips; null before the first.")
    gross_pnl: float
    items: list[RoundTrip] = Field(description="Newest first.")


class Worker(BaseModel):
    """A worker's last heartbeat and what it means."""

    model_config = _OUT

    worker: str = Field(description="<stage> or strategy-runner/<strategy>.")
    stage: str
    strategy: str
    status: str = Field(description="ok, starting, restarting, failing or down.")
    why: str = Field(description="The failure reason, or why it is not ok.")
    lag: int
    starts: int = Field(description="Processes started under this id (crash loops count up).")
    started_at: float
    updated_at: float


class WorkerList(BaseModel):
    model_config = _OUT

    items: list[Worker]


class Portfolio(BaseModel):
    """Totals over every strategy."""

    model_config = _OUT

    strategies: int
    realised_pnl: float
    unrealised_pnl: float
    charges: float
    net_pnl: float
    gross_exposure: float
    orders: int
    fills: int
    rejections: int
    updated_at: float

    @classmethod
    def of(cls, view: TotalsView) -> Portfolio:
        """The API's model of the read model's view: the same fields, validated."""
        return cls.model_validate(msgspec.to_builtins(view))


class OrderRecord(BaseModel):
    """An order or fill record as the portfolio manager stored it.

    ``type`` and ``strategy`` are always present; the other fields are those of the
    order/fill event (``symbol``, ``side``, ``quantity``, ``price``, ids, timestamps, ...).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    strategy: str


class RejectionRecord(BaseModel):
    """A risk rejection: the signal's strategy and symbol, and why it was refused."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    strategy: str
    reason: str | None = Field(default=None, description="A RiskReason code.")
    message: str | None = None


R = TypeVar("R", bound=BaseModel)


class Page(BaseModel, Generic[R]):
    """A page of a newest-first list."""

    model_config = _OUT

    total: int = Field(description="Records matching the filter (the lists are capped).")
    offset: int
    limit: int
    items: list[R]


class Health(BaseModel):
    model_config = _OUT

    status: str


__all__ = [
    "ErrorResponse",
    "Health",
    "OrderRecord",
    "Page",
    "PnlHistory",
    "PnlPoint",
    "Portfolio",
    "Position",
    "PriceHistory",
    "PricePoint",
    "RejectionRecord",
    "RoundTrip",
    "Strategy",
    "StrategyList",
    "Trades",
    "Worker",
    "WorkerList",
]
