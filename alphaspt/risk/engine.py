"""Pre-trade risk: one signal + the state + a RiskProfile's limits → approve or reject, with why.

The limits are :class:`alphaspt.core.specs.RiskProfileSpec`, exactly as the custom resource
states them. Position, exposure, loss and per-profile rate limits apply **per strategy**
(each strategy bound to a profile gets the profile's limits); the account's order caps
(:class:`RiskEngineConfig`: 10/s, 400/min, 5,000/day by default, Kite's limits) apply to
every strategy of the account together (this engine's state).

The rules are a table: :data:`RULES`, one small function ``(state, signal, limits, ctx) ->
Rejection | None`` per rule, applied in order; the first rejection is the decision's reason
(nautilus_trader's ``_check_*`` style). A new rule is one function plus one entry.

 1. ``INVALID_SIGNAL``: quantity < 1, a non-positive or non-finite ``ref_price``, a LIMIT
    order without a positive ``limit_price``; with an instruments file, NRML on a cash
    equity or CNC on a future/option.
 2. ``KILL_SWITCH``: the global switch, the profile's switch from ``control.commands``, or
    ``limits.kill_switch``: risk-increasing orders are refused, risk-reducing ones allowed
    (FIA/SEBI: a kill switch lets a position be closed).
 3. ``PAUSED``: the strategy (or ``*``) is paused. Everything is refused.
 4. ``INSTRUMENT_NOT_ALLOWED``: ``allowedInstruments`` is non-empty and lacks the symbol.
 5. ``UNKNOWN_INSTRUMENT``: an instruments file is configured and does not list the symbol.
 6. ``MARKET_CLOSED``: with a trading calendar, ``now`` is not inside an NSE session
    (weekend, holiday, before 09:15 or at/after 15:30 IST, a day beyond the calendar).
 7. ``OUTSIDE_TRADING_WINDOW``: ``now`` in the window's timezone is not in ``[start, end)``
    (the profile's own restriction, inside the session).
 8. ``PRODUCT_CUTOFF``: an MIS order that is not risk-reducing at or after ``misCutoff``
    (IST); once the cut-off has squared the strategy off (``squared_off``), any MIS order.
 9. ``SHORT_SELL``: a CNC sell beyond the holdings (position plus pending sells).
10. ``LOT_SIZE``: the quantity is not a multiple of the instrument's lot size.
11. ``TICK_SIZE``: a LIMIT price that is not a multiple of the instrument's tick (exact).
12. ``MAX_ORDER_QUANTITY``: quantity > ``maxOrderQuantity``.
13. ``MAX_ORDER_VALUE``: quantity x price > ``maxOrderValue`` in paise; price = ``limit_price``
    of a LIMIT order, else the last traded price (``NO_REFERENCE_PRICE`` when there is none).
14. ``CIRCUIT_LIMIT``: the price (LIMIT price, else ``ref_price``) is outside the instrument's
    band around the previous close (the last price at the IST day roll, else the file's
    ``last_price``), edges inclusive.
15. ``PRICE_BAND``: the price deviates from the last traded price by more than
    ``priceBandPercent`` (``NO_REFERENCE_PRICE`` without an LTP).
16. ``MAX_POSITION``: ``|position + pending + signed qty| > maxPositionPerInstrument``,
    unless the order is risk-reducing (so a position above a lowered limit can be cut).
17. ``MAX_GROSS_EXPOSURE``: the strategy's gross exposure after the order (sum over symbols
    of ``|position + pending| x last price``, in paise) > ``maxGrossExposure``, unless
    risk-reducing.
18. ``MAX_DAILY_LOSS``: daily P&L (realised net of charges + unrealised, IST day, rounded to
    the paisa) ``<= -maxDailyLoss``, unless the order is risk-reducing.
19. ``ORDER_RATE_SECOND``: approvals of the strategy in ``(now - 1 s, now]`` already reached
    ``maxOrdersPerSecond``, or the account's reached its per-second cap.
20. ``ORDER_RATE_MINUTE``: the same over 60 s against ``maxOrdersPerMinute`` and the
    account's per-minute cap.
21. ``ORDER_RATE_DAY``: the account's approvals of the IST day reached its daily cap.

*Risk-reducing* means: opposite side to ``position + pending`` of that (strategy, symbol)
and no larger than it, i.e. it moves towards flat and never flips.

Money is exact: rupee amounts are compared in integer paise (floats rounded half-even at the
paisa first, so a P&L of -999.9999999999999 is -1000.00), percentages and ticks as
``Decimal``. "At the limit" passes everywhere: quantity == max, value == max, deviation ==
band, |position| == max, exposure == max, price == circuit edge; the loss rule trips at
P&L == -maxDailyLoss (the CR says "<=").

An approval is recorded in the rate windows and the day's count and as a *pending* order
(towards position and exposure) until its fills (:meth:`RiskEngine.on_fill`) or rejection
(:meth:`RiskEngine.on_order_rejected`) arrive. Rejections count towards nothing.
Every decision is remembered by signal id: a redelivered signal gets the same decision and is
not counted twice. Pending orders (MIS, CNC and NRML alike) are dropped at the IST day
roll-over (day orders expire); positions carry over (CNC as holdings; MIS positions are
flattened by the square-off before the close, so none is left to carry).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from alphaspt.core.events import (
    Command,
    Control,
    Fill,
    Order,
    OrderRejected,
    OrderType,
    Product,
    RiskDecision,
    RiskReason,
    Side,
    Signal,
    Tick,
    now_ns,
)
from alphaspt.core.specs import RiskProfileSpec
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.market import Instrument, Instruments, TradingCalendar, decimal_of, to_paise
from alphaspt.market.calendar import ist_datetime
from alphaspt.market.money import rupees
from alphaspt.risk.state import MINUTE_NS, SECOND_NS, CachedDecision, PendingOrder, RiskState

EXCHANGE_MAX_ORDERS_PER_SECOND: Final = 10
"""NSE/Kite: at most 10 orders per second per account, whatever the profile says."""
KITE_MAX_ORDERS_PER_MINUTE: Final = 400
KITE_MAX_ORDERS_PER_DAY: Final = 5000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RiskEngineConfig(BaseModel):
    """Account-wide settings of the risk engine (frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_max_orders_per_second: int = Field(
        default=EXCHANGE_MAX_ORDERS_PER_SECOND, ge=1, le=EXCHANGE_MAX_ORDERS_PER_SECOND
    )
    account_max_orders_per_minute: int | None = Field(default=KITE_MAX_ORDERS_PER_MINUTE, ge=1)
    """Account-wide cap per minute (Kite: 400/min); ``None``: none."""
    account_max_orders_per_day: int | None = Field(default=KITE_MAX_ORDERS_PER_DAY, ge=1)
    """Account-wide cap per IST day (Kite: 5,000/day); ``None``: none."""
    trade_id_retention_days: int = Field(default=3, ge=1)
    """Fills are de-duplicated by trade id over this many IST days."""
    decision_cache_size: int = Field(default=10_000, ge=0)
    """Decisions remembered by signal id for redelivered signals."""


class Rejection(NamedTuple):
    reason: RiskReason
    message: str


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What every rule may look at besides the state, the signal and the limits."""

    profile: str
    now_ns: int
    config: RiskEngineConfig
    calendar: TradingCalendar | None
    instrument: Instrument | None
    """The signal's instrument (None without an instruments file or when it is unknown)."""
    instruments_configured: bool
    limit_price: float | None
    """The LIMIT order's price (None for MARKET)."""
    ltp: float | None
    position: int
    pending: int
    reducing: bool
    squared_off: bool = False
    """Today's MIS cut-off has squared this strategy's positions off already."""

    @property
    def price(self) -> float | None:
        """The order's price for value checks: the limit price, else the LTP."""
        return self.limit_price if self.limit_price is not None else self.ltp


Rule = Callable[[RiskState, Signal, RiskProfileSpec, RuleContext], "Rejection | None"]


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_limits(limits: RiskProfileSpec) -> None:
    """Refuse limits the engine cannot apply (unknown timezone). Call on configuration load."""
    try:
        _zone(limits.trading_window.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidConfiguration(
            f"tradingWindow.timezone {limits.trading_window.timezone!r} is not a known timezone"
        ) from exc


def _is_reducing(current: int, signed: int) -> bool:
    """The order moves ``current`` towards zero without crossing it."""
    return current != 0 and (current > 0) != (signed > 0) and abs(signed) <= abs(current)


def _band_price(signal: Signal, ctx: RuleContext) -> float:
    return ctx.limit_price if ctx.limit_price is not None else signal.ref_price


# -- the rules, in order ----------------------------------------------------------------------

def _check_signal(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                  ctx: RuleContext) -> Rejection | None:
    R = RiskReason.INVALID_SIGNAL
    if signal.quantity < 1:
        return Rejection(R, f"quantity must be at least 1, got {signal.quantity}")
    if not (math.isfinite(signal.ref_price) and signal.ref_price > 0):
        return Rejection(R, f"ref_price must be positive, got {signal.ref_price}")
    lp = signal.limit_price
    if signal.order_type is OrderType.LIMIT and not (
        lp is not None and math.isfinite(lp) and lp > 0
    ):
        return Rejection(R, f"LIMIT order needs a positive limit_price, got {lp}")
    inst = ctx.instrument
    if inst is not None:
        if signal.product is Product.NRML and not inst.is_derivative:
            return Rejection(R, f"NRML is for futures and options; {inst.key} is "
                                f"{inst.instrument_type} (use CNC or MIS)")
        if signal.product is Product.CNC and inst.is_derivative:
            return Rejection(R, f"CNC is for equity delivery; {inst.key} is "
                                f"{inst.instrument_type} (use NRML or MIS)")
    return None


def _check_kill_switch(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                       ctx: RuleContext) -> Rejection | None:
    if ctx.reducing:
        return None
    R = RiskReason.KILL_SWITCH
    if st.kill_switch_global:
        return Rejection(R, "global kill switch engaged")
    if limits.kill_switch:
        return Rejection(R, f"kill switch engaged in risk profile {ctx.profile} (spec)")
    if ctx.profile in st.kill_switch_profiles:
        return Rejection(R, f"kill switch engaged for risk profile {ctx.profile}")
    return None


def _check_paused(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                  ctx: RuleContext) -> Rejection | None:
    if "*" in st.paused:
        return Rejection(RiskReason.PAUSED, "all strategies are paused")
    if signal.strategy in st.paused:
        return Rejection(RiskReason.PAUSED, f"strategy {signal.strategy} is paused")
    return None


def _check_allowed_instrument(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                              ctx: RuleContext) -> Rejection | None:
    if limits.allowed_instruments and signal.symbol not in limits.allowed_instruments:
        allowed = ", ".join(limits.allowed_instruments)
        return Rejection(RiskReason.INSTRUMENT_NOT_ALLOWED,
                         f"{signal.symbol} is not in allowedInstruments ({allowed})")
    return None


def _check_known_instrument(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                            ctx: RuleContext) -> Rejection | None:
    if ctx.instruments_configured and ctx.instrument is None:
        return Rejection(RiskReason.UNKNOWN_INSTRUMENT,
                         f"{signal.symbol} is not in the instruments file")
    return None


def _check_market_open(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                       ctx: RuleContext) -> Rejection | None:
    if ctx.calendar is None:
        return None
    closed = ctx.calendar.check(ctx.now_ns)
    return None if closed is None else Rejection(RiskReason.MARKET_CLOSED, closed)


def _check_trading_window(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                          ctx: RuleContext) -> Rejection | None:
    window = limits.trading_window
    R = RiskReason.OUTSIDE_TRADING_WINDOW
    try:
        zone = _zone(window.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return Rejection(R, f"tradingWindow.timezone {window.timezone!r} is unknown; "
                            "refusing to trade")
    local = (_EPOCH + timedelta(microseconds=ctx.now_ns // 1000)).astimezone(zone)
    if not window.start <= local.time() < window.end:
        return Rejection(R, f"{local:%Y-%m-%d %H:%M:%S} {window.timezone} is outside the "
                            f"trading window {window.start:%H:%M}-{window.end:%H:%M}")
    return None


def _check_product_cutoff(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                          ctx: RuleContext) -> Rejection | None:
    if signal.product is not Product.MIS or (ctx.reducing and not ctx.squared_off):
        return None
    local = ist_datetime(ctx.now_ns)
    if local.time() < limits.mis_cutoff:
        return None
    if ctx.squared_off:
        return Rejection(RiskReason.PRODUCT_CUTOFF,
                         f"{local:%H:%M:%S} IST is after the MIS cutoff "
                         f"{limits.mis_cutoff:%H:%M}, and its square-off is closing this "
                         "strategy's MIS positions: no further MIS order is accepted today")
    return Rejection(RiskReason.PRODUCT_CUTOFF,
                     f"{local:%H:%M:%S} IST is at or after the MIS cutoff "
                     f"{limits.mis_cutoff:%H:%M}; only risk-reducing MIS orders are "
                     "accepted")


def _check_short_sell(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                      ctx: RuleContext) -> Rejection | None:
    if signal.product is not Product.CNC or signal.side is not Side.SELL:
        return None
    pending_sells = sum(
        p.remaining for p in st.pending.values()
        if p.strategy == signal.strategy and p.symbol == signal.symbol and p.remaining < 0)
    available = ctx.position + pending_sells
    if signal.quantity > available:
        return Rejection(RiskReason.SHORT_SELL,
                         f"CNC sell of {signal.quantity} exceeds the holdings {max(available, 0)}"
                         f" (position {ctx.position}, pending sells {-pending_sells}); "
                         "delivery cannot be sold short")
    return None


def _check_lot_size(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                    ctx: RuleContext) -> Rejection | None:
    inst = ctx.instrument
    if inst is not None and signal.quantity % inst.lot_size:
        return Rejection(RiskReason.LOT_SIZE,
                         f"quantity {signal.quantity} is not a multiple of the lot size "
                         f"{inst.lot_size} of {inst.key}")
    return None


def _check_tick_size(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                     ctx: RuleContext) -> Rejection | None:
    inst = ctx.instrument
    if inst is None or ctx.limit_price is None:
        return None
    if decimal_of(ctx.limit_price) % inst.tick_size:
        return Rejection(RiskReason.TICK_SIZE,
                         f"limit price {decimal_of(ctx.limit_price)} is not a multiple of the "
                         f"tick size {inst.tick_size} of {inst.key}")
    return None


def _check_order_quantity(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                          ctx: RuleContext) -> Rejection | None:
    if signal.quantity > limits.max_order_quantity:
        return Rejection(RiskReason.MAX_ORDER_QUANTITY,
                         f"quantity {signal.quantity} exceeds maxOrderQuantity "
                         f"{limits.max_order_quantity}")
    return None


def _no_price(signal: Signal) -> Rejection:
    return Rejection(RiskReason.NO_REFERENCE_PRICE,
                     f"no last traded price for {signal.symbol} yet")


def _check_order_value(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                       ctx: RuleContext) -> Rejection | None:
    price = ctx.price
    if price is None:
        return _no_price(signal)
    value = signal.quantity * to_paise(price)
    limit = to_paise(limits.max_order_value)
    if value > limit:
        return Rejection(RiskReason.MAX_ORDER_VALUE,
                         f"order value {rupees(value)} ({signal.quantity} x {price:.2f}) exceeds"
                         f" maxOrderValue {rupees(limit)}")
    return None


def _check_circuit_limit(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                         ctx: RuleContext) -> Rejection | None:
    inst = ctx.instrument
    band = inst.band_percent if inst is not None else None
    if inst is None or band is None:
        return None
    close = st.day_open_prices.get(signal.symbol)
    reference = decimal_of(close) if close is not None else inst.last_price
    if reference <= 0:
        return None
    lower = reference * (100 - band) / 100
    upper = reference * (100 + band) / 100
    price = decimal_of(_band_price(signal, ctx))
    if not lower <= price <= upper:
        return Rejection(RiskReason.CIRCUIT_LIMIT,
                         f"price {price} is outside the {band}% circuit band "
                         f"{lower:.2f}-{upper:.2f} around the previous close {reference}")
    return None


def _check_price_band(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                      ctx: RuleContext) -> Rejection | None:
    if ctx.ltp is None:
        return _no_price(signal)
    checked = decimal_of(_band_price(signal, ctx))
    ltp = decimal_of(ctx.ltp)
    band = decimal_of(limits.price_band_percent)
    if abs(checked - ltp) * 100 > band * ltp:
        deviation = abs(checked - ltp) / ltp * 100
        return Rejection(RiskReason.PRICE_BAND,
                         f"price {checked:.2f} is {deviation:.2f}% from last traded price "
                         f"{ltp:.2f}, beyond priceBandPercent {limits.price_band_percent:g}")
    return None


def _check_position(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                    ctx: RuleContext) -> Rejection | None:
    signed = signal.side.sign * signal.quantity
    after = ctx.position + ctx.pending + signed
    if abs(after) > limits.max_position_per_instrument and not ctx.reducing:
        return Rejection(RiskReason.MAX_POSITION,
                         f"position after order {after} exceeds maxPositionPerInstrument "
                         f"{limits.max_position_per_instrument} (position {ctx.position}, "
                         f"pending {ctx.pending}, order {signed:+d})")
    return None


def _check_gross_exposure(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                          ctx: RuleContext) -> Rejection | None:
    if ctx.reducing or ctx.ltp is None:
        return None
    exposures = st.exposure_positions(signal.strategy)
    exposures[signal.symbol] = (
        ctx.position + ctx.pending + signal.side.sign * signal.quantity, ctx.ltp)
    after = sum(abs(q) * to_paise(m) for q, m in exposures.values())
    limit = to_paise(limits.max_gross_exposure)
    if after > limit:
        return Rejection(RiskReason.MAX_GROSS_EXPOSURE,
                         f"gross exposure after order {rupees(after)} exceeds "
                         f"maxGrossExposure {rupees(limit)}")
    return None


def _check_daily_loss(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                      ctx: RuleContext) -> Rejection | None:
    if ctx.reducing:
        return None
    pnl = to_paise(st.daily_pnl(signal.strategy))
    limit = to_paise(limits.max_daily_loss)
    if pnl <= -limit:
        return Rejection(RiskReason.MAX_DAILY_LOSS,
                         f"daily P&L {rupees(pnl)} has reached maxDailyLoss {rupees(limit)}; "
                         "only risk-reducing orders are accepted")
    return None


def _check_rate_second(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                       ctx: RuleContext) -> Rejection | None:
    n = st.orders_within(signal.strategy, ctx.now_ns, SECOND_NS)
    if n >= limits.max_orders_per_second:
        return Rejection(RiskReason.ORDER_RATE_SECOND,
                         f"{n} orders in the last second reached maxOrdersPerSecond "
                         f"{limits.max_orders_per_second}")
    cap = ctx.config.account_max_orders_per_second
    n = st.orders_within(None, ctx.now_ns, SECOND_NS)
    if n >= cap:
        return Rejection(RiskReason.ORDER_RATE_SECOND,
                         f"{n} account orders in the last second reached the exchange limit "
                         f"{cap}/s")
    return None


def _check_rate_minute(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                       ctx: RuleContext) -> Rejection | None:
    n = st.orders_within(signal.strategy, ctx.now_ns, MINUTE_NS)
    if n >= limits.max_orders_per_minute:
        return Rejection(RiskReason.ORDER_RATE_MINUTE,
                         f"{n} orders in the last minute reached maxOrdersPerMinute "
                         f"{limits.max_orders_per_minute}")
    cap = ctx.config.account_max_orders_per_minute
    if cap is not None:
        n = st.orders_within(None, ctx.now_ns, MINUTE_NS)
        if n >= cap:
            return Rejection(RiskReason.ORDER_RATE_MINUTE,
                             f"{n} account orders in the last minute reached the account cap "
                             f"{cap}/min")
    return None


def _check_rate_day(st: RiskState, signal: Signal, limits: RiskProfileSpec,
                    ctx: RuleContext) -> Rejection | None:
    cap = ctx.config.account_max_orders_per_day
    if cap is not None and st.account_orders_today >= cap:
        return Rejection(RiskReason.ORDER_RATE_DAY,
                         f"{st.account_orders_today} account orders today reached the account "
                         f"cap {cap}/day")
    return None


RULES: Final[tuple[Rule, ...]] = (
    _check_signal,
    _check_kill_switch,
    _check_paused,
    _check_allowed_instrument,
    _check_known_instrument,
    _check_market_open,
    _check_trading_window,
    _check_product_cutoff,
    _check_short_sell,
    _check_lot_size,
    _check_tick_size,
    _check_order_quantity,
    _check_order_value,
    _check_circuit_limit,
    _check_price_band,
    _check_position,
    _check_gross_exposure,
    _check_daily_loss,
    _check_rate_second,
    _check_rate_minute,
    _check_rate_day,
)
"""The pre-trade rules in the order they are applied (see the module docstring)."""


def _same(signal_id: str) -> str:
    return signal_id


class RiskEngine:
    """Applies a RiskProfile's limits to signals. Pure: the caller supplies time and events."""

    def __init__(
        self,
        state: RiskState | None = None,
        *,
        config: RiskEngineConfig | None = None,
        clock: Callable[[], int] = now_ns,
        client_order_id: Callable[[str], str] = _same,
        calendar: TradingCalendar | None = None,
        instruments: Instruments | None = None,
    ) -> None:
        """``client_order_id`` maps a signal id to the trading engine's client order id, so
        fills (which carry only the client order id) release the right pending order; an
        ``orders.submitted`` event passed to :meth:`on_order_submitted` corrects it anyway.
        ``clock`` only stamps ``ingest_ts``; rule time is ``evaluate``'s ``now_ns``.
        ``calendar`` (None: no MARKET_CLOSED rule) and ``instruments`` (None: no
        UNKNOWN_INSTRUMENT, LOT_SIZE, TICK_SIZE or CIRCUIT_LIMIT rule) are the exchange's."""
        self.state = state if state is not None else RiskState()
        self.config = config or RiskEngineConfig()
        self._clock = clock
        self._client_order_id = client_order_id
        self.calendar = calendar
        self.instruments = instruments

    # -- decisions ----------------------------------------------------------------------------

    def evaluate(
        self, signal: Signal, profile_name: str, limits: RiskProfileSpec, now_ns: int,
        *, squared_off: bool = False,
    ) -> RiskDecision:
        """Approve or reject ``signal`` under ``limits`` at time ``now_ns`` (epoch ns).

        ``squared_off``: today's MIS cut-off has squared the strategy's positions off
        (PRODUCT_CUTOFF then refuses its reducing MIS orders too: they would race the
        square-off, whose quantity the trading engine fixes)."""
        cached = self.state.decisions.get(signal.event_id)
        if cached is not None:
            return self._decision(signal, cached)
        self.state.roll_day(now_ns, trade_id_retention_days=self.config.trade_id_retention_days)
        self.state.prune_order_times(now_ns)
        reason, message, price = self._check(signal, profile_name, limits, now_ns,
                                             squared_off)
        cached = CachedDecision(
            approved=reason is RiskReason.OK,
            reason=reason,
            message=message,
            risk_profile=profile_name,
        )
        if cached.approved:
            self.state.record_order(signal.strategy, now_ns)
            self.state.pending[self._client_order_id(signal.event_id)] = PendingOrder(
                signal_id=signal.event_id,
                strategy=signal.strategy,
                symbol=signal.symbol,
                remaining=signal.side.sign * signal.quantity,
                price=price,
                approved_ns=now_ns,
            )
        self._remember(signal.event_id, cached)
        return self._decision(signal, cached)

    def reject(
        self,
        signal: Signal,
        reason: RiskReason,
        message: str,
        profile_name: str | None = None,
    ) -> RiskDecision:
        """A rejection decided outside :meth:`evaluate` (``UNKNOWN_STRATEGY``,
        ``NO_RISK_PROFILE``); remembered like any decision."""
        cached = CachedDecision(
            approved=False, reason=reason, message=message, risk_profile=profile_name
        )
        self._remember(signal.event_id, cached)
        return self._decision(signal, cached)

    def _remember(self, signal_id: str, cached: CachedDecision) -> None:
        size = self.config.decision_cache_size
        if size == 0:
            return
        decisions = self.state.decisions
        decisions[signal_id] = cached
        while len(decisions) > size:
            del decisions[next(iter(decisions))]

    def _decision(self, signal: Signal, cached: CachedDecision) -> RiskDecision:
        return RiskDecision(
            event_id=signal.event_id,
            exchange_ts=signal.exchange_ts,
            ingest_ts=self._clock(),
            signal=signal,
            approved=cached.approved,
            reason=cached.reason,
            message=cached.message,
            risk_profile=cached.risk_profile,
        )

    def _check(
        self, signal: Signal, profile: str, limits: RiskProfileSpec, now: int,
        squared_off: bool = False,
    ) -> tuple[RiskReason, str, float]:
        st = self.state
        limit_price = signal.limit_price if signal.order_type is OrderType.LIMIT else None
        position = st.position(signal.strategy, signal.symbol)
        pending = st.pending_quantity(signal.strategy, signal.symbol)
        instruments = self.instruments
        ctx = RuleContext(
            profile=profile,
            now_ns=now,
            config=self.config,
            calendar=self.calendar,
            instrument=instruments.get(signal.symbol) if instruments is not None else None,
            instruments_configured=instruments is not None,
            limit_price=limit_price,
            ltp=st.last_prices.get(signal.symbol),
            position=position,
            pending=pending,
            reducing=_is_reducing(position + pending, signal.side.sign * signal.quantity),
            squared_off=squared_off,
        )
        for rule in RULES:
            rejection = rule(st, signal, limits, ctx)
            if rejection is not None:
                return rejection.reason, rejection.message, ctx.price or 0.0
        return RiskReason.OK, "approved", ctx.price or 0.0

    # -- events that change the state ---------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """Record the last traded price (ignores non-positive prices)."""
        self.state.roll_day(
            tick.exchange_ts, trade_id_retention_days=self.config.trade_id_retention_days
        )
        if math.isfinite(tick.price) and tick.price > 0:
            self.state.update_price(tick.symbol, tick.price)

    def on_fill(self, fill: Fill) -> bool:
        """Apply an execution to positions and P&L and release its pending quantity.

        Returns False for a trade id already applied (nothing changes).
        """
        self.state.roll_day(
            fill.exchange_ts, trade_id_retention_days=self.config.trade_id_retention_days
        )
        return self.state.apply_fill(fill)

    def on_order_submitted(self, order: Order) -> None:
        """Learn the trading engine's client order id for a pending signal."""
        pending = self.state.pending
        if order.client_order_id in pending:
            return
        for key, p in list(pending.items()):
            if p.signal_id == order.signal_id:
                pending[order.client_order_id] = pending.pop(key)
                return

    def on_order_rejected(self, rejected: OrderRejected) -> bool:
        """Release the pending quantity of an order the broker refused. True if it was pending."""
        if self.state.release(rejected.client_order_id):
            return True
        for key, p in list(self.state.pending.items()):
            if p.signal_id == rejected.signal_id:
                del self.state.pending[key]
                return True
        return False

    def apply_control(self, control: Control) -> bool:
        """Apply a ``control.commands`` event; True if it changed the state.

        ``KILL_SWITCH`` with target kind ``RiskProfile`` (or ``*``) and target ``*`` engages
        (``value`` true) or releases the global switch, otherwise the named profile's.
        ``PAUSE``/``RESUME`` with target kind ``TradingStrategy`` (or ``*``) pause or resume
        the named strategy; target ``*`` pauses all, and ``RESUME *`` resumes every strategy.
        Releasing a switch here does not override ``killSwitch: true`` in the profile spec.
        """
        kind = control.target_kind
        if control.command is Command.KILL_SWITCH and kind in ("RiskProfile", "*"):
            return self.set_kill_switch(
                None if control.target == "*" else control.target, control.value
            )
        if control.command is Command.PAUSE and kind in ("TradingStrategy", "*"):
            return self.pause(control.target)
        if control.command is Command.RESUME and kind in ("TradingStrategy", "*"):
            return self.resume(control.target)
        return False

    def set_kill_switch(self, profile: str | None, engaged: bool) -> bool:
        """Engage/release the kill switch of ``profile`` (``None``: global)."""
        st = self.state
        if profile is None:
            changed = st.kill_switch_global != engaged
            st.kill_switch_global = engaged
            return changed
        present = profile in st.kill_switch_profiles
        if engaged and not present:
            st.kill_switch_profiles.append(profile)
        elif not engaged and present:
            st.kill_switch_profiles.remove(profile)
        return engaged != present

    def pause(self, strategy: str) -> bool:
        if strategy in self.state.paused:
            return False
        self.state.paused.append(strategy)
        return True

    def resume(self, strategy: str) -> bool:
        if strategy == "*":
            changed = bool(self.state.paused)
            self.state.paused.clear()
            return changed
        if strategy in self.state.paused:
            self.state.paused.remove(strategy)
            return True
        return False
