"""Square-off: which positions to close, when, and under which deterministic ids. Pure.

The risk manager asks this module, at three moments, for the closing orders to emit as
approved decisions on ``trading.signals.validated``:

- ``MIS_CUTOFF``: the first tick at or after a RiskProfile's ``misCutoff`` (IST) of an IST
  day closes every open MIS position of every strategy bound to that profile;
- ``MIS_CARRIED``: an MIS position still open when the IST day rolls over (no tick came
  after the cutoff) is closed at the first event of the next day, and reported;
- ``FLATTEN``: a ``Control(FLATTEN)`` closes every position (any product) of its targets.

A square-off signal's id is ``sqoff-`` + a hash of (reason, key, strategy, symbol), where
the key is the IST day (cut-off, carried) or the FLATTEN command's event id: a redelivered
tick or command yields the same id, which the risk manager and the trading engine already
know, so it never becomes a second order. Its ``exchange_ts`` is the cut-off instant (or
the day's start, or the command's timestamp), never the arrival of a particular tick.

The signal's side and quantity are the risk manager's *estimate* (position + pending of
the pair). The trading engine, which knows the working orders and its own fills exactly,
cancels the pair's working orders and closes its exact position (the order on
``orders.submitted`` is what was placed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time
from enum import StrEnum
from typing import Final, NamedTuple

from alphaspt.core.clock import NS_PER_SECOND, ist_day_start
from alphaspt.core.events import OrderType, Product, RiskReason, Side, Signal, stable_id
from alphaspt.risk.state import CachedDecision, PendingOrder, RiskState

SQUARE_OFF_PREFIX: Final = "sqoff-"


class SquareOffReason(StrEnum):
    MIS_CUTOFF = "MIS_CUTOFF"
    MIS_CARRIED = "MIS_CARRIED"
    FLATTEN = "FLATTEN"


def square_off_id(reason: SquareOffReason, key: object, strategy: str, symbol: str) -> str:
    """The square-off signal id of (reason, day or command id, strategy, symbol)."""
    return SQUARE_OFF_PREFIX + stable_id("square-off", reason.value, key, strategy, symbol)


def is_square_off(signal_id: str) -> bool:
    return signal_id.startswith(SQUARE_OFF_PREFIX)


def cutoff_ns(day: int, cutoff: time) -> int:
    """Epoch ns of ``cutoff`` (IST wall time) on IST ``day`` (days since 1970-01-01)."""
    seconds = cutoff.hour * 3600 + cutoff.minute * 60 + cutoff.second
    return ist_day_start(day) + seconds * NS_PER_SECOND + cutoff.microsecond * 1000


def is_reducing(current: int, signed: int) -> bool:
    """The order ``signed`` moves ``current`` towards zero without crossing it."""
    return current != 0 and (current > 0) != (signed > 0) and abs(signed) <= abs(current)


class Close(NamedTuple):
    strategy: str
    symbol: str
    signed: int
    """The estimated closing quantity (signed, never 0)."""


def closes(state: RiskState, strategies: Iterable[str]) -> list[Close]:
    """The pairs of ``strategies`` that still need a square-off, in (strategy, symbol) order.

    A pair needs one when its position + pending is not flat, or when it holds a position
    or a working order that an outstanding square-off does not already cover (position +
    pending is flat only because a square-off is pending, and nothing else is pending).
    """
    wanted = set(strategies)
    pos: dict[tuple[str, str], int] = {}
    pend: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for strategy in wanted:
        for symbol, p in state.positions.get(strategy, {}).items():
            if p.quantity:
                pos[(strategy, symbol)] = p.quantity
    for order in state.pending.values():
        if order.strategy in wanted:
            pend.setdefault((order.strategy, order.symbol), []).append(
                (order.signal_id, order.remaining))
    out: list[Close] = []
    for pair in sorted(set(pos) | set(pend)):
        position = pos.get(pair, 0)
        pending = pend.get(pair, [])
        net = position + sum(q for _, q in pending)
        others = [q for sid, q in pending if not is_square_off(sid) and q]
        if net == 0 and not others and (
                position == 0 or any(is_square_off(sid) for sid, _ in pending)):
            continue
        signed = -net if net else -position if position else -others[0]
        if signed:
            out.append(Close(pair[0], pair[1], signed))
    return out


def square_off_signal(close: Close, reason: SquareOffReason, key: object, ts: int,
                      ref_price: float, product: Product) -> Signal:
    """The approved-by-construction MARKET signal that closes ``close``."""
    return Signal(
        event_id=square_off_id(reason, key, close.strategy, close.symbol),
        exchange_ts=ts,
        strategy=close.strategy,
        symbol=close.symbol,
        side=Side.BUY if close.signed > 0 else Side.SELL,
        quantity=abs(close.signed),
        order_type=OrderType.MARKET,
        ref_price=ref_price,
        product=product,
        reason=f"square-off:{reason.value}",
    )


def register(state: RiskState, signal: Signal, coid: str, profile: str | None,
             message: str, cache_size: int) -> tuple[CachedDecision, str | None]:
    """Record a square-off as an approved decision: pending towards position and exposure,
    counted in the rate windows (the account's order caps see it), remembered by id.
    Returns the decision and the id of a remembered decision evicted to make room."""
    decision = CachedDecision(approved=True, reason=RiskReason.OK, message=message,
                              risk_profile=profile)
    state.record_order(signal.strategy, signal.exchange_ts)
    state.pending[coid] = PendingOrder(
        signal_id=signal.event_id, strategy=signal.strategy, symbol=signal.symbol,
        remaining=signal.side.sign * signal.quantity, price=signal.ref_price,
        approved_ns=signal.exchange_ts)
    evicted = None
    if cache_size:
        state.decisions[signal.event_id] = decision
        if len(state.decisions) > cache_size:
            evicted = next(iter(state.decisions))
            del state.decisions[evicted]
    return decision, evicted
