"""Statutory and brokerage charges of Zerodha equity intraday (MIS) trades on NSE.

Each component is computed in exact decimal arithmetic and rounded to paise (2 decimals,
half up), as a contract note shows it; GST is charged on the rounded brokerage, exchange
transaction charge and SEBI fee.

Partial fills and the ₹20 brokerage cap
---------------------------------------
Zerodha caps brokerage **per executed order**, not per fill. An order that fills in
several parts pays ``min(0.03% x cumulative turnover, ₹20)`` in total. To make that exact
for every component, the charges of one fill are the charges of the order's cumulative
turnover *after* the fill minus those *before* it (:meth:`ChargeCalculator.for_fill` with
``prior_turnover``). The per-fill amounts therefore always add up to exactly what the
whole order costs at once (:meth:`ChargeCalculator.for_order`): a fill after the cap is
reached pays no brokerage, and no paise are lost or double counted by rounding each part.
Every component is non-decreasing in turnover, so no per-fill amount is ever negative.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, ConfigDict, Field

from alphaspt.core.events import Charges, Side

_PAISE = Decimal("0.01")
_ZERO = Decimal(0)


class ChargeRates(BaseModel):
    """Rates of one charge schedule, as fractions of turnover (0.0003 = 0.03 %).

    Defaults: Zerodha's published equity-intraday (MIS) schedule for NSE
    (zerodha.com/charges), as in force from 1 October 2024, when NSE moved to a flat
    transaction charge of 0.00297 % under SEBI's "true to label" circular (the schedule
    this code was written against, 2025; re-check the page when rates change). NSE's
    Investor Protection Fund Trust levy (₹10/crore, shown separately by some contract
    notes) is not modelled.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    brokerage_rate: Decimal = Field(default=Decimal("0.0003"), ge=0)
    """0.03 % of the order's turnover ..."""
    brokerage_cap: Decimal = Field(default=Decimal("20"), ge=0)
    """... capped at ₹20 per executed order."""
    stt_sell_rate: Decimal = Field(default=Decimal("0.00025"), ge=0)
    """Securities Transaction Tax, intraday: 0.025 % on the sell side only."""
    exchange_txn_rate: Decimal = Field(default=Decimal("0.0000297"), ge=0)
    """NSE transaction charge: 0.00297 % of turnover, both sides."""
    sebi_rate: Decimal = Field(default=Decimal("0.000001"), ge=0)
    """SEBI turnover fee: ₹10 per crore = 0.0001 %, both sides."""
    stamp_buy_rate: Decimal = Field(default=Decimal("0.00003"), ge=0)
    """Stamp duty, intraday: 0.003 % (₹300/crore) on the buy side only."""
    gst_rate: Decimal = Field(default=Decimal("0.18"), ge=0)
    """GST: 18 % on brokerage + exchange transaction charge + SEBI fee."""


ZERODHA_MIS_NSE = ChargeRates()
"""The default schedule (see :class:`ChargeRates`)."""


def _paise(value: Decimal) -> Decimal:
    return value.quantize(_PAISE, rounding=ROUND_HALF_UP)


def to_decimal(value: float | int | Decimal) -> Decimal:
    """A float as the decimal it prints as (``1000.05`` → ``Decimal('1000.05')``)."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    else:
        if not math.isfinite(value):
            raise ValueError(f"not a finite amount: {value!r}")
        result = Decimal(repr(value))
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


def turnover_of(quantity: int, price: float | Decimal) -> Decimal:
    """Exact turnover ``quantity x price`` of one fill, in rupees."""
    if quantity < 0:
        raise ValueError(f"quantity must not be negative: {quantity}")
    price_d = to_decimal(price)
    if price_d < 0:
        raise ValueError(f"price must not be negative: {price}")
    return Decimal(quantity) * price_d


class _Parts:
    __slots__ = ("brokerage", "exchange_txn", "gst", "sebi", "stamp_duty", "stt")

    def __init__(self, rates: ChargeRates, side: Side, turnover: Decimal) -> None:
        self.brokerage = min(_paise(turnover * rates.brokerage_rate), rates.brokerage_cap)
        self.stt = _paise(turnover * rates.stt_sell_rate) if side is Side.SELL else _ZERO
        self.exchange_txn = _paise(turnover * rates.exchange_txn_rate)
        self.sebi = _paise(turnover * rates.sebi_rate)
        self.stamp_duty = _paise(turnover * rates.stamp_buy_rate) if side is Side.BUY else _ZERO
        self.gst = _paise((self.brokerage + self.exchange_txn + self.sebi) * rates.gst_rate)


class ChargeCalculator:
    """Charges of orders and fills under one :class:`ChargeRates` schedule."""

    def __init__(self, rates: ChargeRates = ZERODHA_MIS_NSE) -> None:
        self.rates = rates

    def for_order(self, side: Side, turnover: float | Decimal) -> Charges:
        """Charges of one executed order with total ``turnover`` (rupees)."""
        t = to_decimal(turnover)
        if t < 0:
            raise ValueError(f"turnover must not be negative: {turnover}")
        p = _Parts(self.rates, side, t)
        return Charges(
            brokerage=float(p.brokerage),
            stt=float(p.stt),
            exchange_txn=float(p.exchange_txn),
            sebi=float(p.sebi),
            stamp_duty=float(p.stamp_duty),
            gst=float(p.gst),
        )

    def for_fill(
        self,
        side: Side,
        quantity: int,
        price: float | Decimal,
        *,
        prior_turnover: float | Decimal = _ZERO,
    ) -> Charges:
        """Charges of one fill of an order whose earlier fills had ``prior_turnover``.

        The result is ``for_order(prior + this fill) - for_order(prior)``, component by
        component, so the ₹20 brokerage cap applies to the order's cumulative brokerage.
        """
        before = to_decimal(prior_turnover)
        if before < 0:
            raise ValueError(f"prior turnover must not be negative: {prior_turnover}")
        after = before + turnover_of(quantity, price)
        a = _Parts(self.rates, side, after)
        b = _Parts(self.rates, side, before)
        return Charges(
            brokerage=float(a.brokerage - b.brokerage),
            stt=float(a.stt - b.stt),
            exchange_txn=float(a.exchange_txn - b.exchange_txn),
            sebi=float(a.sebi - b.sebi),
            stamp_duty=float(a.stamp_duty - b.stamp_duty),
            gst=float(a.gst - b.gst),
        )
