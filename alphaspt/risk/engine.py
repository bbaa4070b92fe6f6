"""Pre-trade risk: one signal + the state + a RiskProfile's limits → approve or reject, with why.

The limits are :class:`alphaspt.core.specs.RiskProfileSpec`, exactly as the custom resource
states them. Position, exposure, loss and per-profile rate limits apply **per strategy**
(each strategy bound to a profile gets the profile's limits); the exchange's ceiling of
:data:`EXCHANGE_MAX_ORDERS_PER_SECOND` applies to the whole account (this engine's state).

Rules, in the order they are applied (the first failure is the decision's reason):

 0. ``INVALID_SIGNAL``: quantity < 1, a non-positive or non-finite ``ref_price``, a LIMIT
    order without a positive ``limit_price``.
 1. ``KILL_SWITCH``: the global switch, the profile's switch from ``control.commands``, or
    ``limits.kill_switch``. Everything is refused, risk-reducing orders included.
 2. ``PAUSED``: the strategy (or ``*``) is paused. Everything is refused.
 3. ``INSTRUMENT_NOT_ALLOWED``: ``allowedInstruments`` is non-empty and lacks the symbol.
 4. ``OUTSIDE_TRADING_WINDOW``: ``now`` in the window's timezone is not in
    ``[start, end)`` (start inclusive, end exclusive). No holiday calendar.
 5. ``MAX_ORDER_QUANTITY``: quantity > ``maxOrderQuantity``.
 6. ``MAX_ORDER_VALUE``: quantity x price > ``maxOrderValue``; price = ``limit_price`` of a
    LIMIT order, else the last traded price (``NO_REFERENCE_PRICE`` when there is none).
 7. ``PRICE_BAND``: the limit price (LIMIT) or ``ref_price`` (MARKET) deviates from the last
    traded price by more than ``priceBandPercent`` (``NO_REFERENCE_PRICE`` without an LTP).
 8. ``MAX_POSITION``: ``|position + pending + signed qty| > maxPositionPerInstrument``,
    unless the order is risk-reducing (so a position above a lowered limit can be cut).
 9. ``MAX_GROSS_EXPOSURE``: the strategy's gross exposure after the order (sum over symbols
    of ``|position + pending| x last price``) > ``maxGrossExposure``, unless risk-reducing.
10. ``MAX_DAILY_LOSS``: daily P&L (realised net of charges + unrealised, IST day)
    ``<= -maxDailyLoss``, unless the order is risk-reducing, so a strategy at its loss
    limit can still close out.
11. ``ORDER_RATE_SECOND``: approvals of the strategy in ``(now - 1 s, now]`` already reached
    ``maxOrdersPerSecond``, or the account's reached the exchange's 10/s.
12. ``ORDER_RATE_MINUTE``: approvals of the strategy in ``(now - 60 s, now]`` reached
    ``maxOrdersPerMinute`` (or the account's reached the optional account-wide cap).

*Risk-reducing* means: opposite side to ``position + pending`` of that (strategy, symbol)
and no larger than it, i.e. it moves towards flat and never flips.

"At the limit" passes everywhere: quantity == max, value == max, deviation == band, |position|
== max, exposure == max; the loss rule trips at P&L == -maxDailyLoss (the CR says "<=").

An approval is recorded in the rate windows and as a *pending* order (towards position and
exposure) until its fills (:meth:`RiskEngine.on_fill`) or rejection
(:meth:`RiskEngine.on_order_rejected`) arrive. Rejections count towards nothing.
Every decision is remembered by signal id: a redelivered signal gets the same decision and is
not counted twice. Pending orders are dropped at the IST day roll-over (day orders expire).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from alphaspt.core.events import (
    Command,
    Control,
    Fill,
    Order,
    OrderRejected,
    OrderType,
    RiskDecision,
    RiskReason,
    Signal,
    Tick,
    now_ns,
)
from alphaspt.core.specs import RiskProfileSpec
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.risk.state import MINUTE_NS, SECOND_NS, CachedDecision, PendingOrder, RiskState

EXCHANGE_MAX_ORDERS_PER_SECOND: Final = 10
"""NSE: at most 10 orders per second per account, whatever the profile says."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RiskEngineConfig(BaseModel):
    """Account-wide settings of the risk engine (frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_max_orders_per_second: int = Field(
        default=EXCHANGE_MAX_ORDERS_PER_SECOND, ge=1, le=EXCHANGE_MAX_ORDERS_PER_SECOND
    )
    account_max_orders_per_minute: int | None = Field(default=None, ge=1)
    """Optional account-wide cap per minute (the broker's, e.g. Kite's 200/min)."""
    trade_id_retention_days: int = Field(default=3, ge=1)
    """Fills are de-duplicated by trade id over this many IST days."""
    decision_cache_size: int = Field(default=10_000, ge=0)
    """Decisions remembered by signal id for redelivered signals."""


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


def _exceeds(value: float, limit: float) -> bool:
    """``value > limit`` ignoring floating-point noise (a few ulps of the limit)."""
    return value - limit > 1e-9 * max(1.0, abs(limit))


def _is_reducing(current: int, signed: int) -> bool:
    """The order moves ``current`` towards zero without crossing it."""
    return current != 0 and (current > 0) != (signed > 0) and abs(signed) <= abs(current)


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
    ) -> None:
        """``client_order_id`` maps a signal id to the trading engine's client order id, so
        fills (which carry only the client order id) release the right pending order; an
        ``orders.submitted`` event passed to :meth:`on_order_submitted` corrects it anyway.
        ``clock`` only stamps ``ingest_ts``; rule time is ``evaluate``'s ``now_ns``."""
        self.state = state if state is not None else RiskState()
        self.config = config or RiskEngineConfig()
        self._clock = clock
        self._client_order_id = client_order_id

    # -- decisions ----------------------------------------------------------------------------

    def evaluate(
        self, signal: Signal, profile_name: str, limits: RiskProfileSpec, now_ns: int
    ) -> RiskDecision:
        """Approve or reject ``signal`` under ``limits`` at time ``now_ns`` (epoch ns)."""
        cached = self.state.decisions.get(signal.event_id)
        if cached is not None:
            return self._decision(signal, cached)
        self.state.roll_day(now_ns, trade_id_retention_days=self.config.trade_id_retention_days)
        self.state.prune_order_times(now_ns)
        reason, message, price = self._check(signal, profile_name, limits, now_ns)
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
        self, signal: Signal, profile: str, limits: RiskProfileSpec, now: int
    ) -> tuple[RiskReason, str, float]:
        st = self.state
        R = RiskReason
        qty = signal.quantity
        # 0. well-formed
        if qty < 1:
            return R.INVALID_SIGNAL, f"quantity must be at least 1, got {qty}", 0.0
        if not (math.isfinite(signal.ref_price) and signal.ref_price > 0):
            return R.INVALID_SIGNAL, f"ref_price must be positive, got {signal.ref_price}", 0.0
        limit_price = signal.limit_price
        if signal.order_type is OrderType.LIMIT and not (
            limit_price is not None and math.isfinite(limit_price) and limit_price > 0
        ):
            return (
                R.INVALID_SIGNAL,
                f"LIMIT order needs a positive limit_price, got {limit_price}",
                0.0,
            )
        if signal.order_type is not OrderType.LIMIT:
            limit_price = None
        # 1. kill switch
        if st.kill_switch_global:
            return R.KILL_SWITCH, "global kill switch engaged", 0.0
        if limits.kill_switch:
            return R.KILL_SWITCH, f"kill switch engaged in risk profile {profile} (spec)", 0.0
        if profile in st.kill_switch_profiles:
            return R.KILL_SWITCH, f"kill switch engaged for risk profile {profile}", 0.0
        # 2. paused
        if "*" in st.paused:
            return R.PAUSED, "all strategies are paused", 0.0
        if signal.strategy in st.paused:
            return R.PAUSED, f"strategy {signal.strategy} is paused", 0.0
        # 3. instruments
        if limits.allowed_instruments and signal.symbol not in limits.allowed_instruments:
            allowed = ", ".join(limits.allowed_instruments)
            return (
                R.INSTRUMENT_NOT_ALLOWED,
                f"{signal.symbol} is not in allowedInstruments ({allowed})",
                0.0,
            )
        # 4. trading window
        window = limits.trading_window
        try:
            zone = _zone(window.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return (
                R.OUTSIDE_TRADING_WINDOW,
                f"tradingWindow.timezone {window.timezone!r} is unknown; refusing to trade",
                0.0,
            )
        local = (_EPOCH + timedelta(microseconds=now // 1000)).astimezone(zone)
        if not window.start <= local.time() < window.end:
            return (
                R.OUTSIDE_TRADING_WINDOW,
                f"{local:%Y-%m-%d %H:%M:%S} {window.timezone} is outside the trading window "
                f"{window.start:%H:%M}-{window.end:%H:%M}",
                0.0,
            )
        # 5. order quantity
        if qty > limits.max_order_quantity:
            return (
                R.MAX_ORDER_QUANTITY,
                f"quantity {qty} exceeds maxOrderQuantity {limits.max_order_quantity}",
                0.0,
            )
        # 6. order value
        ltp = st.last_prices.get(signal.symbol)
        price = limit_price if limit_price is not None else ltp
        if price is None:
            return R.NO_REFERENCE_PRICE, f"no last traded price for {signal.symbol} yet", 0.0
        value = qty * price
        if _exceeds(value, limits.max_order_value):
            return (
                R.MAX_ORDER_VALUE,
                f"order value {value:.2f} ({qty} x {price:.2f}) exceeds maxOrderValue "
                f"{limits.max_order_value:.2f}",
                price,
            )
        # 7. price band
        if ltp is None:
            return R.NO_REFERENCE_PRICE, f"no last traded price for {signal.symbol} yet", price
        checked = limit_price if limit_price is not None else signal.ref_price
        deviation = abs(checked - ltp) / ltp * 100.0
        if _exceeds(deviation, limits.price_band_percent):
            return (
                R.PRICE_BAND,
                f"price {checked:.2f} is {deviation:.2f}% from last traded price {ltp:.2f}, "
                f"beyond priceBandPercent {limits.price_band_percent:g}",
                price,
            )
        # 8. position per instrument
        signed = signal.side.sign * qty
        position = st.position(signal.strategy, signal.symbol)
        pending = st.pending_quantity(signal.strategy, signal.symbol)
        current = position + pending
        after = current + signed
        reducing = _is_reducing(current, signed)
        if abs(after) > limits.max_position_per_instrument and not reducing:
            return (
                R.MAX_POSITION,
                f"position after order {after} exceeds maxPositionPerInstrument "
                f"{limits.max_position_per_instrument} (position {position}, pending {pending}, "
                f"order {signed:+d})",
                price,
            )
        # 9. gross exposure (this symbol marked at the LTP)
        exposures = st.exposure_positions(signal.strategy)
        before_gross = sum(abs(q) * m for q, m in exposures.values())
        old_qty, old_mark = exposures.get(signal.symbol, (0, ltp))
        after_gross = before_gross - abs(old_qty) * old_mark + abs(after) * ltp
        if _exceeds(after_gross, limits.max_gross_exposure) and not reducing:
            return (
                R.MAX_GROSS_EXPOSURE,
                f"gross exposure after order {after_gross:.2f} exceeds maxGrossExposure "
                f"{limits.max_gross_exposure:.2f}",
                price,
            )
        # 10. daily loss
        pnl = st.daily_pnl(signal.strategy)
        if pnl <= -limits.max_daily_loss and not reducing:
            return (
                R.MAX_DAILY_LOSS,
                f"daily P&L {pnl:.2f} has reached maxDailyLoss {limits.max_daily_loss:.2f}; "
                "only risk-reducing orders are accepted",
                price,
            )
        # 11. orders per second
        n = st.orders_within(signal.strategy, now, SECOND_NS)
        if n >= limits.max_orders_per_second:
            return (
                R.ORDER_RATE_SECOND,
                f"{n} orders in the last second reached maxOrdersPerSecond "
                f"{limits.max_orders_per_second}",
                price,
            )
        n = st.orders_within(None, now, SECOND_NS)
        if n >= self.config.account_max_orders_per_second:
            return (
                R.ORDER_RATE_SECOND,
                f"{n} account orders in the last second reached the exchange limit "
                f"{self.config.account_max_orders_per_second}/s",
                price,
            )
        # 12. orders per minute
        n = st.orders_within(signal.strategy, now, MINUTE_NS)
        if n >= limits.max_orders_per_minute:
            return (
                R.ORDER_RATE_MINUTE,
                f"{n} orders in the last minute reached maxOrdersPerMinute "
                f"{limits.max_orders_per_minute}",
                price,
            )
        cap = self.config.account_max_orders_per_minute
        if cap is not None:
            n = st.orders_within(None, now, MINUTE_NS)
            if n >= cap:
                return (
                    R.ORDER_RATE_MINUTE,
                    f"{n} account orders in the last minute reached the account limit {cap}/min",
                    price,
                )
        return R.OK, "approved", price

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
