"""Everything the risk manager remembers, as one serialisable value.

:class:`RiskState` holds positions per (strategy, symbol) built from fills (de-duplicated by
``trade_id``), last traded prices, orders approved but not yet filled or rejected
(*pending*), approval timestamps for the rate limits, P&L, kill switches and paused
strategies. It is a msgspec struct: :meth:`RiskState.to_json` / :meth:`RiskState.from_json`
round-trip it exactly, so the worker can persist it and rebuild after a restart.

Accounting (per strategy, average-cost method, the one rule of
:func:`alphaspt.core.accounting.average_cost` that the portfolio ledger uses too):

- A fill that adds to a position (or opens one) moves the average price; a fill against it
  realises ``closed_qty * (fill_price - avg_price) * sign(position)``; a fill that flips the
  position opens the remainder at the fill price. Charges (``fill.charges.total``) are
  subtracted from realised P&L, so the daily-loss limit sees net P&L.
- Unrealised P&L marks each position at the symbol's last traded price (at its average price,
  i.e. zero, while no price is known).
- Daily P&L is ``equity - equity at the start of the IST trading day`` with
  ``equity = cumulative realised + unrealised``. At the first event of a new IST day
  (a tick, a fill or a decision, whichever comes first) the start-of-day equity is captured
  with the last prices then known (normally the previous close), so a carried position's
  overnight gap counts towards the new day.
- Pending orders of the day before stay pending over the IST day roll-over until their
  fill or cancellation arrives (day orders expire at the close, and their outcome follows);
  older ones are dropped at the roll. :meth:`RiskState.expire_pending` lets the worker
  drop orders whose outcome never came.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Final

import msgspec

from alphaspt.core.accounting import average_cost, to_decimal
from alphaspt.core.clock import ist_day as ist_day
from alphaspt.core.clock import ist_day_start
from alphaspt.core.events import Fill, RiskReason

_NS: Final = 1_000_000_000
SECOND_NS: Final = _NS
MINUTE_NS: Final = 60 * _NS


class Position(msgspec.Struct, kw_only=True):
    quantity: int = 0
    """Signed: positive long, negative short."""
    avg_price: float = 0.0


class PendingOrder(msgspec.Struct, kw_only=True):
    """An approved order whose fills or rejection have not all arrived yet."""

    signal_id: str
    strategy: str
    symbol: str
    remaining: int
    """Signed quantity still expected to fill (BUY positive)."""
    price: float
    """The reference price used at approval."""
    approved_ns: int = 0
    """When the order was approved (epoch ns)."""


class CachedDecision(msgspec.Struct, frozen=True, kw_only=True):
    approved: bool
    reason: RiskReason
    message: str
    risk_profile: str | None = None


class _Meta(msgspec.Struct, kw_only=True):
    day: int
    kill_switch_global: bool
    kill_switch_profiles: list[str]
    paused: list[str]
    account_order_times: list[Any]
    """:func:`pack_times` runs (a plain list of times before they were packed)."""
    account_orders_today: int = 0


def pack_times(times: list[int]) -> list[list[int]]:
    """Sorted approval times as runs ``[gap from the previous time, count]`` (the first gap
    from 0), for the changelog: identical times collapse into one run, and a fast replay
    piles thousands on one instant (square-offs behind a cut-off are stamped at it: the
    window records reached 383 kB in a 300k-tick day, near the 512 kB bound)."""
    out: list[list[int]] = []
    prev = 0
    for t in times:
        if out and t == prev:
            out[-1][1] += 1
        else:
            out.append([t - prev, 1])
            prev = t
    return out


def unpack_times(data: list[Any]) -> list[int]:
    """The times of :func:`pack_times` runs, or of a plain list (records written before)."""
    times: list[int] = []
    t = 0
    for item in data:
        if isinstance(item, int) and not isinstance(item, bool):
            times.append(item)
            continue
        if not (isinstance(item, list) and len(item) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                and item[1] >= 1):
            raise ValueError(f"invalid approval times: {item!r}")
        t += item[0]
        times.extend([t] * item[1])
    if any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError("invalid approval times: not sorted")
    return times


class _Book(msgspec.Struct, kw_only=True):
    positions: dict[str, Position]
    realised: float | None
    day_start_equity: float | None


_ENCODER = msgspec.json.Encoder()


def _restore_order(key: str) -> tuple[int, str]:
    """Restore decisions last, in id order (deterministic; the cache then evicts in it)."""
    return (0 if not key.startswith("dec/") else 1, key)


class RiskState(msgspec.Struct, kw_only=True):
    """The risk manager's whole memory. Mutated only through its methods and the engine."""

    version: int = 1
    day: int = 0
    """Current IST trading day (days since epoch); 0 before the first event."""
    positions: dict[str, dict[str, Position]] = msgspec.field(default_factory=dict)
    """strategy -> symbol -> position."""
    realised: dict[str, float] = msgspec.field(default_factory=dict)
    """strategy -> cumulative realised P&L net of charges."""
    day_start_equity: dict[str, float] = msgspec.field(default_factory=dict)
    last_prices: dict[str, float] = msgspec.field(default_factory=dict)
    pending: dict[str, PendingOrder] = msgspec.field(default_factory=dict)
    """client order id -> pending order."""
    strategy_order_times: dict[str, list[int]] = msgspec.field(default_factory=dict)
    """strategy -> approval timestamps (ns) of the last minute, ascending."""
    account_order_times: list[int] = msgspec.field(default_factory=list)
    account_orders_today: int = 0
    """The account's approvals of the current IST day (the daily order cap)."""
    day_open_prices: dict[str, float] = msgspec.field(default_factory=dict)
    """symbol -> last price when the IST day began (the previous close, as far as this
    state saw it): the circuit limit's reference. Bounded by the symbols traded."""
    trade_ids: dict[str, int] = msgspec.field(default_factory=dict)
    """trade id -> IST day it was applied (pruned after a retention period)."""
    decisions: dict[str, CachedDecision] = msgspec.field(default_factory=dict)
    """signal id -> decision, oldest first (bounded), so a redelivered signal gets the same
    answer and is not counted twice."""
    kill_switch_global: bool = False
    kill_switch_profiles: list[str] = msgspec.field(default_factory=list)
    paused: list[str] = msgspec.field(default_factory=list)
    """Paused strategies; ``*`` pauses all."""

    # -- serialisation ----------------------------------------------------------------------

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> RiskState:
        """Decode :meth:`to_json` output. Raises ``ValueError`` if it is not a valid state."""
        try:
            state = msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise ValueError(f"invalid risk state: {exc}") from exc
        if state.version != 1:
            raise ValueError(f"unsupported risk state version {state.version}")
        return state

    # -- per-key form (the stage's changelog) ------------------------------------------------
    #
    # meta               day, kill switches, paused, the account's approval times
    # book/<strategy>    positions, realised P&L and start-of-day equity of one strategy
    # px/<symbol>        last traded price
    # close/<symbol>     last price at the start of the IST day (the circuit reference)
    # pend/<coid>        one pending order
    # rate/<strategy>    the strategy's approval times of the last minute (packed runs)
    # trade/<id>         a trade id applied (its IST day; pruned after the retention)
    # dec/<signal id>    a remembered decision (bounded by the engine's cache size)

    def state_keys(self) -> set[str]:
        out = {"meta"}
        out.update(f"book/{s}" for s in self.strategies() | set(self.day_start_equity))
        out.update(f"px/{s}" for s in self.last_prices)
        out.update(f"close/{s}" for s in self.day_open_prices)
        out.update(f"pend/{c}" for c in self.pending)
        out.update(f"rate/{s}" for s in self.strategy_order_times)
        out.update(f"trade/{t}" for t in self.trade_ids)
        out.update(f"dec/{d}" for d in self.decisions)
        return out

    def export(self, key: str) -> bytes | None:
        """The value of one key (``None``: the key is gone)."""
        kind, _, name = key.partition("/")
        enc = _ENCODER.encode
        if kind == "meta":
            return enc(_Meta(day=self.day, kill_switch_global=self.kill_switch_global,
                             kill_switch_profiles=self.kill_switch_profiles,
                             paused=self.paused,
                             account_order_times=pack_times(self.account_order_times),
                             account_orders_today=self.account_orders_today))
        if kind == "book":
            if name not in self.positions and name not in self.realised \
                    and name not in self.day_start_equity:
                return None
            return enc(_Book(positions=self.positions.get(name, {}),
                             realised=self.realised.get(name),
                             day_start_equity=self.day_start_equity.get(name)))
        if kind == "rate":
            times = self.strategy_order_times.get(name)
            return None if times is None else enc(pack_times(times))
        tables: dict[str, dict[str, Any]] = {
            "px": self.last_prices, "close": self.day_open_prices, "pend": self.pending,
            "trade": self.trade_ids, "dec": self.decisions,
        }
        value = tables.get(kind, {}).get(name)
        return None if value is None else enc(value)

    @classmethod
    def from_items(cls, items: dict[str, bytes]) -> RiskState:
        """Rebuild from :meth:`export` values. Raises ``ValueError`` for a malformed one."""
        st = cls()
        try:
            for key in sorted(items, key=_restore_order):
                kind, _, name = key.partition("/")
                data = items[key]
                if kind == "meta":
                    meta = msgspec.json.decode(data, type=_Meta)
                    st.day = meta.day
                    st.kill_switch_global = meta.kill_switch_global
                    st.kill_switch_profiles = list(meta.kill_switch_profiles)
                    st.paused = list(meta.paused)
                    st.account_order_times = unpack_times(meta.account_order_times)
                    st.account_orders_today = meta.account_orders_today
                elif kind == "book":
                    book = msgspec.json.decode(data, type=_Book)
                    if book.positions:
                        st.positions[name] = dict(book.positions)
                    if book.realised is not None:
                        st.realised[name] = book.realised
                    if book.day_start_equity is not None:
                        st.day_start_equity[name] = book.day_start_equity
                elif kind == "px":
                    st.last_prices[name] = msgspec.json.decode(data, type=float)
                elif kind == "close":
                    st.day_open_prices[name] = msgspec.json.decode(data, type=float)
                elif kind == "pend":
                    st.pending[name] = msgspec.json.decode(data, type=PendingOrder)
                elif kind == "rate":
                    st.strategy_order_times[name] = unpack_times(
                        msgspec.json.decode(data, type=list[Any]))
                elif kind == "trade":
                    st.trade_ids[name] = msgspec.json.decode(data, type=int)
                elif kind == "dec":
                    st.decisions[name] = msgspec.json.decode(data, type=CachedDecision)
                else:
                    raise ValueError(f"unknown risk state key {key!r}")
        except msgspec.DecodeError as exc:
            raise ValueError(f"invalid risk state: {exc}") from exc
        return st

    # -- queries ------------------------------------------------------------------------------

    def position(self, strategy: str, symbol: str) -> int:
        pos = self.positions.get(strategy, {}).get(symbol)
        return pos.quantity if pos else 0

    def pending_quantity(self, strategy: str, symbol: str) -> int:
        """Signed quantity of approved orders not yet filled or rejected."""
        return sum(
            p.remaining
            for p in self.pending.values()
            if p.strategy == strategy and p.symbol == symbol
        )

    def mark(self, symbol: str) -> float | None:
        return self.last_prices.get(symbol)

    def unrealised(self, strategy: str) -> float:
        total = 0.0
        for symbol, pos in self.positions.get(strategy, {}).items():
            if pos.quantity:
                mark = self.last_prices.get(symbol, pos.avg_price)
                total += pos.quantity * (mark - pos.avg_price)
        return total

    def equity(self, strategy: str) -> float:
        return self.realised.get(strategy, 0.0) + self.unrealised(strategy)

    def daily_pnl(self, strategy: str) -> float:
        """Realised (net of charges) + unrealised P&L since the start of the IST day."""
        return self.equity(strategy) - self.day_start_equity.get(strategy, 0.0)

    def exposure_positions(self, strategy: str) -> dict[str, tuple[int, float]]:
        """symbol -> (position + pending, mark price) for every symbol the strategy touches.

        The mark is the last traded price, else the pending order's price, else the
        position's average price.
        """
        out: dict[str, tuple[int, float]] = {}
        for symbol, pos in self.positions.get(strategy, {}).items():
            out[symbol] = (pos.quantity, self.last_prices.get(symbol, pos.avg_price))
        for p in self.pending.values():
            if p.strategy != strategy:
                continue
            qty, mark = out.get(p.symbol, (0, self.last_prices.get(p.symbol, p.price)))
            out[p.symbol] = (qty + p.remaining, mark)
        return out

    def gross_exposure(self, strategy: str) -> float:
        """Rupees: sum over symbols of |position + pending| x mark."""
        return sum(abs(q) * m for q, m in self.exposure_positions(strategy).values())

    def strategies(self) -> set[str]:
        return set(self.positions) | set(self.realised)

    # -- updates ------------------------------------------------------------------------------

    def roll_day(self, ts_ns: int, *, trade_id_retention_days: int = 3) -> bool:
        """Advance to the IST day of ``ts_ns`` if it is later; True when the day changed."""
        day = ist_day(ts_ns)
        if day <= self.day:
            return False
        self.day_start_equity = {s: self.equity(s) for s in self.strategies()}
        self.day_open_prices = dict(self.last_prices)
        self.day = day
        self.account_orders_today = 0
        # NSE day orders expire at the close, but the outcome of one placed late in the
        # day (its fill on its own day, or the broker's cancellation) can arrive after the
        # next day's first event (a replay's ticks run ahead of the fills). Dropping it here
        # would under-count exposure until then, so yesterday's stay pending until their
        # outcome arrives; older ones cannot be open any more (the paper broker expires
        # them by then, the exchange cancelled them).
        self.expire_pending(ist_day_start(day - 1))
        oldest = day - trade_id_retention_days
        self.trade_ids = {t: d for t, d in self.trade_ids.items() if d > oldest}
        return True

    def update_price(self, symbol: str, price: float) -> None:
        self.last_prices[symbol] = price

    def apply_fill(self, fill: Fill) -> bool:
        """Apply an execution once. Returns False (and changes nothing) for a known trade id."""
        if fill.trade_id in self.trade_ids:
            return False
        signed = fill.side.sign * fill.quantity
        held = self.positions.get(fill.strategy, {}).get(fill.symbol, Position())
        # Raises ValueError (nothing changed) for a zero quantity or a bad price.
        step = average_cost(held.quantity, held.avg_price, signed, fill.price)
        self.trade_ids[fill.trade_id] = self.day
        book = self.positions.setdefault(fill.strategy, {})
        pos = book.setdefault(fill.symbol, Position())
        pos.quantity, pos.avg_price = step.quantity, float(step.avg_price)
        if pos.quantity == 0:
            del book[fill.symbol]
        self.realised[fill.strategy] = float(
            to_decimal(self.realised.get(fill.strategy, 0.0)) + step.realised
            - to_decimal(fill.charges.total)
        )
        self._release_fill(fill.client_order_id, signed)
        return True

    def _release_fill(self, client_order_id: str, signed: int) -> None:
        pending = self.pending.get(client_order_id)
        if pending is None:
            return
        pending.remaining -= signed
        if pending.remaining == 0 or (pending.remaining > 0) != (pending.remaining + signed > 0):
            del self.pending[client_order_id]

    def expire_pending(self, older_than_ns: int) -> list[PendingOrder]:
        """Forget pending orders approved before ``older_than_ns``; returns them."""
        stale = [k for k, p in self.pending.items() if p.approved_ns < older_than_ns]
        return [self.pending.pop(k) for k in stale]

    def release(self, client_order_id: str) -> bool:
        """Forget a pending order (rejected or cancelled). True if it was pending."""
        return self.pending.pop(client_order_id, None) is not None

    def record_order(self, strategy: str, now_ns: int) -> None:
        bisect.insort(self.strategy_order_times.setdefault(strategy, []), now_ns)
        bisect.insort(self.account_order_times, now_ns)
        self.account_orders_today += 1

    def prune_order_times(self, now_ns: int) -> None:
        """Drop approval timestamps older than a minute."""
        cutoff = now_ns - MINUTE_NS
        del self.account_order_times[: bisect.bisect_right(self.account_order_times, cutoff)]
        for strategy in list(self.strategy_order_times):
            times = self.strategy_order_times[strategy]
            del times[: bisect.bisect_right(times, cutoff)]
            if not times:
                del self.strategy_order_times[strategy]

    def orders_within(self, strategy: str | None, now_ns: int, window_ns: int) -> int:
        """Approvals in the half-open window ``(now - window, now]`` (account-wide if None)."""
        times = (
            self.account_order_times
            if strategy is None
            else self.strategy_order_times.get(strategy, [])
        )
        return bisect.bisect_right(times, now_ns) - bisect.bisect_right(times, now_ns - window_ns)
