"""Zerodha's charges on NSE per product and segment, in exact decimal arithmetic.

Every rate, its source and its effective date are in ``docs/charges.md`` (one table); the
defaults below are that table. Four segments, chosen from the product and the instrument
(:func:`segment_from_symbol`, pluggable): equity intraday (MIS), equity delivery (CNC),
futures and options (options on premium: turnover = quantity x premium).

Components and where each is rounded
------------------------------------
- **Brokerage** is per *executed order*: ``min(rate x order turnover, ₹20)`` (intraday,
  futures), zero (delivery) or a flat ₹20 (options), rounded to the paisa.
- **Exchange transaction charge** (NSE, IPFT levy included), **SEBI fee** and **stamp
  duty** (buy side) are computed on the order's turnover and rounded to the paisa, and
  **GST** (18 %) on the order's rounded brokerage + exchange charge + SEBI fee.
- **STT** is rounded to the nearest rupee (paise >= 50 up, as Zerodha's support page
  states) on a *contract-note bucket*: the turnover of one strategy (booked as its own
  account), one IST day, one symbol, one segment and one side (:class:`NoteKey`). That
  is the level at which the exchange and the contract note compute it (per scrip, per
  day, intraday and delivery separately; buys and sells separately where both are taxed).
- **DP charge** (delivery sells only; not on the contract note, posted to the ledger): a
  flat amount plus GST once per scrip per day, charged on the bucket's first sell fill.

Per-fill amounts are differences of cumulative amounts
-------------------------------------------------------
A fill's charges are ``charges(cumulative after the fill) - charges(cumulative before
it)``, component by component: order turnover for the per-order components (so the ₹20
cap holds across partial fills), bucket turnover for STT (so the rupee rounding happens
once per contract-note bucket) and the DP charge. The fills' amounts therefore add up to
exactly what the whole order and the whole contract note cost, no paisa is lost or
counted twice, and none is negative (every component is non-decreasing in turnover).
:class:`ContractNotes` keeps the bucket turnovers for whoever books fills.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alphaspt.core.accounting import to_decimal
from alphaspt.core.events import Charges, Product, Side

_PAISE = Decimal("0.01")
_RUPEE = Decimal(1)
_ZERO = Decimal(0)
_EPOCH = date(1970, 1, 1)


class Segment(StrEnum):
    """What the charges depend on: the product for equity, the instrument for F&O."""

    EQUITY_INTRADAY = "EQUITY_INTRADAY"
    EQUITY_DELIVERY = "EQUITY_DELIVERY"
    FUTURES = "FUTURES"
    OPTIONS = "OPTIONS"


SegmentResolver = Callable[[Product, str], Segment]
"""``(product, symbol) -> segment``; :func:`segment_from_symbol` until the instruments
file is the source (swap in a resolver that looks up ``instrument_type``)."""

_OPTION = re.compile(r"\d(?:CE|PE)$")
"""Kite's NFO option symbols end in the strike and CE/PE: NIFTY25JUN24000CE."""
_FUTURE = re.compile(r"\d{2}[A-Z]{3}FUT$")
"""Kite's NFO future symbols end in year, month and FUT: NIFTY25JUNFUT."""


def segment_from_symbol(product: Product, symbol: str) -> Segment:
    """The segment from Kite's trading-symbol conventions (an ``EXCHANGE:`` prefix is
    ignored). F&O symbols are futures or options whatever the product; an equity is
    intraday under MIS and delivery otherwise (Kite refuses NRML on equities; if one
    comes, it is a carried position and pays delivery charges)."""
    name = symbol.rpartition(":")[2].upper()
    if _OPTION.search(name):
        return Segment.OPTIONS
    if _FUTURE.search(name):
        return Segment.FUTURES
    return Segment.EQUITY_INTRADAY if product is Product.MIS else Segment.EQUITY_DELIVERY


class ChargeRates(BaseModel):
    """One segment's rates from one date on, as fractions of turnover (0.0003 = 0.03 %).

    The defaults are equity intraday (MIS) on NSE; :data:`ZERODHA_NSE` holds every
    segment. Sources and dates: ``docs/charges.md``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    effective_from: date = date(2024, 10, 1)
    """First IST trading day these rates apply to."""
    brokerage_rate: Decimal = Field(default=Decimal("0.0003"), ge=0)
    """0.03 % of the order's turnover ..."""
    brokerage_cap: Decimal = Field(default=Decimal("20"), ge=0)
    """... capped at ₹20 per executed order."""
    brokerage_flat: bool = False
    """True: brokerage is ``brokerage_cap`` per executed order whatever its size (options)."""
    stt_buy_rate: Decimal = Field(default=_ZERO, ge=0)
    """Securities Transaction Tax on buys (delivery: 0.1 %)."""
    stt_sell_rate: Decimal = Field(default=Decimal("0.00025"), ge=0)
    """STT on sells (intraday: 0.025 %)."""
    exchange_txn_rate: Decimal = Field(default=Decimal("0.0000307"), ge=0)
    """NSE transaction charge including the IPFT levy, both sides (cash: 0.00307 %)."""
    sebi_rate: Decimal = Field(default=Decimal("0.000001"), ge=0)
    """SEBI turnover fee: ₹10 per crore = 0.0001 %, both sides."""
    stamp_buy_rate: Decimal = Field(default=Decimal("0.00003"), ge=0)
    """Stamp duty on buys (intraday: 0.003 %)."""
    gst_rate: Decimal = Field(default=Decimal("0.18"), ge=0)
    """GST on brokerage + exchange transaction charge + SEBI fee (and on the DP charge)."""
    dp_charge: Decimal = Field(default=_ZERO, ge=0)
    """Depository charge before GST, once per scrip per IST day with a sell (delivery)."""


class ChargeSchedule(BaseModel):
    """Every segment's rates over time: per segment, versions by ``effective_from``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    intraday: tuple[ChargeRates, ...]
    delivery: tuple[ChargeRates, ...]
    futures: tuple[ChargeRates, ...]
    options: tuple[ChargeRates, ...]

    @model_validator(mode="after")
    def _ordered(self) -> ChargeSchedule:
        for name, versions in self._segments():
            if not versions:
                raise ValueError(f"{name}: at least one set of rates is needed")
            dates = [v.effective_from for v in versions]
            if dates != sorted(set(dates)):
                raise ValueError(f"{name}: versions must have increasing effective_from")
        return self

    def _segments(self) -> Iterator[tuple[str, tuple[ChargeRates, ...]]]:
        yield from (("intraday", self.intraday), ("delivery", self.delivery),
                    ("futures", self.futures), ("options", self.options))

    def rates(self, segment: Segment, day: date | None = None) -> ChargeRates:
        """The rates in force on ``day`` (``None``: the latest). A day before the first
        version gets the first version (older schedules are not modelled)."""
        versions = {
            Segment.EQUITY_INTRADAY: self.intraday, Segment.EQUITY_DELIVERY: self.delivery,
            Segment.FUTURES: self.futures, Segment.OPTIONS: self.options,
        }[segment]
        if day is None:
            return versions[-1]
        chosen = versions[0]
        for v in versions:
            if v.effective_from <= day:
                chosen = v
        return chosen


_EQ = ChargeRates()
_BUDGET_2026 = date(2026, 4, 1)

ZERODHA_NSE = ChargeSchedule(
    intraday=(_EQ,),
    delivery=(ChargeRates(
        brokerage_rate=_ZERO, stt_buy_rate=Decimal("0.001"), stt_sell_rate=Decimal("0.001"),
        stamp_buy_rate=Decimal("0.00015"), dp_charge=Decimal("13")),),
    futures=(
        ChargeRates(stt_sell_rate=Decimal("0.0002"), exchange_txn_rate=Decimal("0.0000183"),
                    stamp_buy_rate=Decimal("0.00002")),
        ChargeRates(effective_from=_BUDGET_2026, stt_sell_rate=Decimal("0.0005"),
                    exchange_txn_rate=Decimal("0.0000183"), stamp_buy_rate=Decimal("0.00002")),
    ),
    options=(
        ChargeRates(brokerage_flat=True, stt_sell_rate=Decimal("0.001"),
                    exchange_txn_rate=Decimal("0.0003553"), stamp_buy_rate=Decimal("0.00003")),
        ChargeRates(effective_from=_BUDGET_2026, brokerage_flat=True,
                    stt_sell_rate=Decimal("0.0015"), exchange_txn_rate=Decimal("0.0003553"),
                    stamp_buy_rate=Decimal("0.00003")),
    ),
)
"""Zerodha on NSE (docs/charges.md): equity from 1 Oct 2024 (NSE's flat "true to label"
transaction charges) and F&O with the STT of Union Budget 2026 from 1 Apr 2026."""

ZERODHA_MIS_NSE = _EQ
"""Equity intraday alone (kept for callers that name one segment)."""


def _paise(value: Decimal) -> Decimal:
    return value.quantize(_PAISE, rounding=ROUND_HALF_UP)


def _rupees(value: Decimal) -> Decimal:
    return value.quantize(_RUPEE, rounding=ROUND_HALF_UP)


def turnover_of(quantity: int, price: float | Decimal) -> Decimal:
    """Exact turnover ``quantity x price`` of one fill, in rupees."""
    if quantity < 0:
        raise ValueError(f"quantity must not be negative: {quantity}")
    price_d = to_decimal(price)
    if price_d < 0:
        raise ValueError(f"price must not be negative: {price}")
    return Decimal(quantity) * price_d


def _non_negative(value: float | Decimal, what: str) -> Decimal:
    d = to_decimal(value)
    if d < 0:
        raise ValueError(f"{what} must not be negative: {value}")
    return d


class _OrderParts:
    """The per-order components of an order with cumulative ``turnover``."""

    __slots__ = ("brokerage", "exchange_txn", "gst", "sebi", "stamp_duty")

    def __init__(self, rates: ChargeRates, side: Side, turnover: Decimal) -> None:
        if rates.brokerage_flat:
            self.brokerage = rates.brokerage_cap if turnover > 0 else _ZERO
        else:
            self.brokerage = min(_paise(turnover * rates.brokerage_rate), rates.brokerage_cap)
        self.exchange_txn = _paise(turnover * rates.exchange_txn_rate)
        self.sebi = _paise(turnover * rates.sebi_rate)
        self.stamp_duty = _paise(turnover * rates.stamp_buy_rate) if side is Side.BUY else _ZERO
        self.gst = _paise((self.brokerage + self.exchange_txn + self.sebi) * rates.gst_rate)


def _note_stt(rates: ChargeRates, side: Side, turnover: Decimal) -> Decimal:
    """STT of a contract-note bucket with cumulative ``turnover``, to the rupee."""
    rate = rates.stt_sell_rate if side is Side.SELL else rates.stt_buy_rate
    return _rupees(turnover * rate)


def _dp(rates: ChargeRates) -> Decimal:
    return _paise(rates.dp_charge * (1 + rates.gst_rate))


def day_date(day: int) -> date:
    """An IST day number (days since 1970-01-01, :func:`alphaspt.core.clock.ist_day`)."""
    return _EPOCH + timedelta(days=day)


class ChargeCalculator:
    """Charges of orders and fills under a :class:`ChargeSchedule`.

    ``schedule`` may also be a single :class:`ChargeRates`, then used for every segment.
    """

    def __init__(
        self,
        schedule: ChargeSchedule | ChargeRates = ZERODHA_NSE,
        *,
        segment_of: SegmentResolver = segment_from_symbol,
    ) -> None:
        if isinstance(schedule, ChargeRates):
            one = (schedule,)
            schedule = ChargeSchedule(intraday=one, delivery=one, futures=one, options=one)
        self.schedule = schedule
        self.segment_of = segment_of

    def rates(self, product: Product, symbol: str, day: int | None = None) -> ChargeRates:
        """The rates of ``symbol`` under ``product`` on IST ``day`` (``None``: latest)."""
        return self.schedule.rates(self.segment_of(product, symbol),
                                   None if day is None else day_date(day))

    def for_fill(
        self,
        side: Side,
        quantity: int,
        price: float | Decimal,
        *,
        product: Product = Product.MIS,
        symbol: str = "",
        day: int | None = None,
        prior_turnover: float | Decimal = _ZERO,
        note_turnover: float | Decimal | None = None,
    ) -> Charges:
        """Charges of one fill (exact decimals inside, float rupees on the wire).

        ``prior_turnover``: the order's earlier fills (brokerage cap, per-order paise).
        ``note_turnover``: the earlier fills of the same contract-note bucket
        (:class:`NoteKey`), this order's included; ``None``: the order is alone on its
        note (``note_turnover = prior_turnover``).
        """
        rates = self.rates(product, symbol, day)
        before = _non_negative(prior_turnover, "prior turnover")
        note_before = before if note_turnover is None else _non_negative(
            note_turnover, "note turnover")
        if note_before < before:
            raise ValueError("the note's turnover includes the order's: it cannot be smaller")
        fill = turnover_of(quantity, price)
        a = _OrderParts(rates, side, before + fill)
        b = _OrderParts(rates, side, before)
        stt = _note_stt(rates, side, note_before + fill) - _note_stt(rates, side, note_before)
        first_sell = side is Side.SELL and note_before == 0 and fill > 0
        return Charges(
            brokerage=float(a.brokerage - b.brokerage),
            stt=float(stt),
            exchange_txn=float(a.exchange_txn - b.exchange_txn),
            sebi=float(a.sebi - b.sebi),
            stamp_duty=float(a.stamp_duty - b.stamp_duty),
            gst=float(a.gst - b.gst),
            dp=float(_dp(rates)) if first_sell and rates.dp_charge else 0.0,
        )

    def for_order(
        self,
        side: Side,
        turnover: float | Decimal,
        *,
        product: Product = Product.MIS,
        symbol: str = "",
        day: int | None = None,
    ) -> Charges:
        """Charges of one executed order with total ``turnover`` (rupees), alone on its
        contract note (STT rounded to the rupee on this turnover; a delivery sell pays the
        DP charge)."""
        t = _non_negative(turnover, "turnover")
        return self.for_fill(side, 1, t, product=product, symbol=symbol, day=day)


class NoteKey(NamedTuple):
    """A contract-note bucket: STT is rounded once per key, the DP charge paid once."""

    account: str
    """Whose note: the platform books each strategy as its own account (see below)."""
    day: int
    """IST day (days since 1970-01-01) of the order."""
    symbol: str
    segment: Segment
    side: Side


class ContractNotes:
    """Cumulative turnover per contract-note bucket, so fills get note-level STT and DP.

    The account is the strategy: a fill's charges then depend on that strategy's own orders
    only, which one partition of the trading engine holds, so they come out the same
    however partitions move between replicas or restarts (deterministic outputs). Several
    strategies trading one scrip on one day in one real account would see Zerodha round
    their combined STT once (under ₹1 less per bucket) and pay one DP charge.

    Bound: one entry per (account, day, symbol, segment, side) booked and not yet pruned;
    the owner calls :meth:`prune` when a day is over, so it holds at most the open days'
    buckets (strategies x symbols x 4 segments x 2 sides per day).
    """

    def __init__(self, calculator: ChargeCalculator | None = None) -> None:
        self.calculator = calculator or ChargeCalculator()
        self._turnover: dict[NoteKey, Decimal] = {}

    def key(self, account: str, day: int, symbol: str, product: Product, side: Side) -> NoteKey:
        return NoteKey(account, day, symbol, self.calculator.segment_of(product, symbol), side)

    def turnover(self, key: NoteKey) -> Decimal:
        return self._turnover.get(key, _ZERO)

    def __len__(self) -> int:
        return len(self._turnover)

    def record(
        self, *, account: str, day: int, symbol: str, product: Product, side: Side,
        turnover: Decimal,
    ) -> None:
        """Add turnover booked elsewhere (rebuilding after a restart). Negative turnover
        takes back a booking (an order replaced in a restore)."""
        if not turnover:
            return
        key = self.key(account, day, symbol, product, side)
        total = self.turnover(key) + turnover
        if total < 0:
            raise ValueError(f"{key}: turnover would become negative")
        if total:
            self._turnover[key] = total
        else:
            del self._turnover[key]

    def charge(
        self,
        *,
        account: str,
        day: int,
        symbol: str,
        product: Product,
        side: Side,
        quantity: int,
        price: float | Decimal,
        prior_turnover: float | Decimal = _ZERO,
    ) -> Charges:
        """Charges of one fill of an order whose earlier fills had ``prior_turnover``,
        given everything booked on its note so far; books the fill."""
        key = self.key(account, day, symbol, product, side)
        charges = self.calculator.for_fill(
            side, quantity, price, product=product, symbol=symbol, day=day,
            prior_turnover=prior_turnover, note_turnover=self.turnover(key))
        self._turnover[key] = self.turnover(key) + turnover_of(quantity, price)
        return charges

    def prune(self, before_day: int, owns: Callable[[str], bool] | None = None) -> int:
        """Forget the buckets of days before ``before_day`` (of the symbols ``owns``
        accepts, default all); returns how many."""
        old = [k for k in self._turnover
               if k.day < before_day and (owns is None or owns(k.symbol))]
        for k in old:
            del self._turnover[k]
        return len(old)


__all__ = [
    "ZERODHA_MIS_NSE",
    "ZERODHA_NSE",
    "ChargeCalculator",
    "ChargeRates",
    "ChargeSchedule",
    "ContractNotes",
    "NoteKey",
    "Segment",
    "SegmentResolver",
    "day_date",
    "segment_from_symbol",
    "to_decimal",
    "turnover_of",
]
