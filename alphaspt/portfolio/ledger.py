"""Positions, P&L and counts from fills and prices: the pure accounting core.

:class:`Portfolio` keeps one strategy's book; :class:`Ledger` keeps every strategy's and
their totals. Both are plain in-memory objects: feed them events, read snapshots, and save
or restore their state as JSON. Nothing here does I/O.

Rules (net position per symbol):

- **Average price** and **realised P&L** follow the one average-cost rule of
  :func:`alphaspt.core.accounting.average_cost` (the risk state uses the same): the
  quantity-weighted mean of the fills that increased the open position; reductions leave
  it unchanged and realise long ``(sell - avg) x qty``, short ``(avg - buy) x qty``; a
  fill through zero opens the remainder at its price; a flat position has average 0.
  Realised P&L is gross: charges are kept separately. Both, and the charges, are kept as
  exact decimals (the state's JSON writes them as plain numbers, as before).
  :func:`alphaspt.core.accounting.round_trips` gives the FIFO view for reports.
- **Unrealised P&L** is ``(last - avg) x net quantity`` (negative quantity when short),
  marked to the latest price given to :meth:`Portfolio.mark`. Until a symbol has been
  marked, its last fill price stands in.
- **Net P&L** = realised + unrealised - charges; **gross exposure** = Σ |qty| x last.
- **Idempotence**: a fill whose ``trade_id`` was already applied changes nothing; an order
  counts once per ``client_order_id``; a rejection counts once per signal (a signal is
  rejected at most once, by the risk manager or by the broker). The seen ids are part of
  the saved state, each with the IST day of its event, so a restart followed by a
  redelivery double counts nothing; :meth:`Ledger.prune` forgets the ids of days that are
  over (the counts stay), which bounds them by one day's events.

Snapshots round money to paise and average prices to 4 decimals; the internal state keeps
full precision, so rounding never compounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

import msgspec

from alphaspt.core.accounting import average_cost, to_decimal
from alphaspt.core.clock import ist_day
from alphaspt.core.events import Fill, Order, OrderRejected, RiskDecision
from alphaspt.core.views import PositionView, StrategyView, TotalsView, money, totals_of

LedgerEvent = Fill | Order | OrderRejected | RiskDecision
"""The events that change a portfolio."""

STATE_VERSION = 1
_ZERO = Decimal(0)
_PAISE = Decimal("0.01")
_AVG = Decimal("0.0001")


# The ledger's snapshots are the read model's views (alphaspt.core.views): one shape from
# the ledger to Redis to the API. ``mode``, ``state`` and ``updated_at`` are the caller's.
PositionSnapshot = PositionView
PortfolioSnapshot = StrategyView
TotalsSnapshot = TotalsView


class PositionState(msgspec.Struct, kw_only=True):
    """Full-precision state of one symbol (mutable, internal; serialised in the state)."""

    symbol: str
    quantity: int = 0
    avg_price: Decimal = _ZERO
    realised_pnl: Decimal = _ZERO
    charges: Decimal = _ZERO
    last_fill_price: float = 0.0


class PortfolioState(msgspec.Struct, kw_only=True):
    """What :meth:`Portfolio.to_json` writes and :meth:`Portfolio.from_json` reads."""

    v: int = STATE_VERSION
    strategy: str
    positions: list[PositionState] = msgspec.field(default_factory=list)
    marks: dict[str, float] = msgspec.field(default_factory=dict)
    charges: Decimal = _ZERO
    trade_ids: list[str] = msgspec.field(default_factory=list)
    order_ids: list[str] = msgspec.field(default_factory=list)
    rejected_signal_ids: list[str] = msgspec.field(default_factory=list)
    counts: tuple[int, int, int] | None = None
    """(orders, fills, rejections) ever; ``None``: the lengths of the id lists."""


class PortfolioBook(msgspec.Struct, kw_only=True):
    """A portfolio without its seen ids: the value of ``pf/<strategy>`` in the changelog."""

    strategy: str
    positions: list[PositionState]
    charges: Decimal
    counts: tuple[int, int, int]

class LedgerState(msgspec.Struct, kw_only=True):
    v: int = STATE_VERSION
    marks: dict[str, float] = msgspec.field(default_factory=dict)
    portfolios: list[PortfolioState] = msgspec.field(default_factory=list)


_ENCODER = msgspec.json.Encoder(decimal_format="number")
"""Decimals as JSON numbers: the state reads as before (and old states read as now)."""


def _money(amount: Decimal) -> float:
    """Exact rupees rounded half up to paise, as the views carry them."""
    return money(float(amount.quantize(_PAISE, ROUND_HALF_UP)))


def _check_price(symbol: str, price: float) -> None:
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"{symbol}: price must be a positive finite number, got {price!r}")




class Portfolio:
    """One strategy's positions, P&L, charges and counts."""

    def __init__(self, strategy: str) -> None:
        if not strategy:
            raise ValueError("strategy name must not be empty")
        self.strategy = strategy
        self._positions: dict[str, PositionState] = {}
        self._marks: dict[str, float] = {}
        self._charges = _ZERO
        self._trade_ids: dict[str, int] = {}
        self._order_ids: dict[str, int] = {}
        self._rejected: dict[str, int] = {}
        """Seen id → IST day of its event."""
        self._orders = 0
        self._fills = 0
        self._rejections = 0

    # ---- events -------------------------------------------------------------------

    def apply(self, event: LedgerEvent) -> bool:
        """Apply any ledger event; ``True`` when it changed the state (``False``: seen)."""
        if isinstance(event, Fill):
            return self.apply_fill(event)
        if isinstance(event, Order):
            return self.record_order(event)
        if isinstance(event, OrderRejected):
            return self.record_rejection(event)
        if isinstance(event, RiskDecision):
            return self.record_risk_decision(event)
        raise TypeError(f"not a ledger event: {type(event).__name__}")

    def apply_fill(self, fill: Fill) -> bool:
        """Book one execution. Returns ``False`` (and changes nothing) for a seen trade id.

        Raises ``ValueError`` for a fill of another strategy or with a non-positive
        quantity or price; nothing is changed then either.
        """
        if fill.strategy != self.strategy:
            raise ValueError(
                f"fill {fill.trade_id} belongs to {fill.strategy!r}, not {self.strategy!r}"
            )
        if fill.trade_id in self._trade_ids:
            return False
        if fill.quantity <= 0:
            raise ValueError(f"fill {fill.trade_id}: quantity must be positive")
        _check_price(fill.symbol, fill.price)

        pos = self._positions.get(fill.symbol)
        if pos is None:
            pos = self._positions[fill.symbol] = PositionState(symbol=fill.symbol)
        step = average_cost(pos.quantity, pos.avg_price, fill.quantity * fill.side.sign,
                            fill.price)
        pos.quantity, pos.avg_price = step.quantity, step.avg_price
        pos.realised_pnl += step.realised
        pos.last_fill_price = fill.price
        fill_charges = to_decimal(fill.charges.total)
        pos.charges += fill_charges
        self._charges += fill_charges
        self._trade_ids[fill.trade_id] = ist_day(fill.exchange_ts)
        self._fills += 1
        return True

    def record_order(self, order: Order) -> bool:
        """Count a submitted order once per ``client_order_id``."""
        self._check_strategy(order.strategy, order.client_order_id)
        if order.client_order_id in self._order_ids:
            return False
        self._order_ids[order.client_order_id] = ist_day(order.exchange_ts)
        self._orders += 1
        return True

    def record_rejection(self, rejection: OrderRejected) -> bool:
        """Count a broker rejection once per signal."""
        self._check_strategy(rejection.strategy, rejection.client_order_id)
        return self._reject(rejection.signal_id, rejection.exchange_ts)

    def record_risk_decision(self, decision: RiskDecision) -> bool:
        """Count a risk rejection once per signal; approvals change nothing."""
        self._check_strategy(decision.signal.strategy, decision.event_id)
        if decision.approved:
            return False
        return self._reject(decision.signal.event_id, decision.exchange_ts)

    def _reject(self, signal_id: str, ts: int) -> bool:
        if signal_id in self._rejected:
            return False
        self._rejected[signal_id] = ist_day(ts)
        self._rejections += 1
        return True

    def prune(self, before_day: int) -> list[str]:
        """Forget the seen ids of events before IST day ``before_day``; returns their
        changelog keys (``t/``, ``o/``, ``r/`` + id)."""
        gone: list[str] = []
        for prefix, ids in (("t/", self._trade_ids), ("o/", self._order_ids),
                            ("r/", self._rejected)):
            old = [i for i, day in ids.items() if day < before_day]
            for i in old:
                del ids[i]
            gone += [prefix + i for i in old]
        return gone

    def seen_day(self, key: str) -> int | None:
        """The day of a seen id by its changelog key (``None``: not seen)."""
        ids = {"t": self._trade_ids, "o": self._order_ids, "r": self._rejected}.get(key[:1])
        return None if ids is None else ids.get(key[2:])

    def remember(self, key: str, day: int) -> None:
        ids = {"t": self._trade_ids, "o": self._order_ids, "r": self._rejected}[key[:1]]
        ids[key[2:]] = day

    def book(self) -> PortfolioBook:
        return PortfolioBook(
            strategy=self.strategy,
            positions=[msgspec.structs.replace(p) for _, p in sorted(self._positions.items())],
            charges=self._charges, counts=(self._orders, self._fills, self._rejections))

    def load_book(self, book: PortfolioBook) -> None:
        self._positions = {p.symbol: msgspec.structs.replace(p) for p in book.positions}
        self._charges = book.charges
        self._orders, self._fills, self._rejections = book.counts

    def _check_strategy(self, strategy: str, ref: str) -> None:
        if strategy != self.strategy:
            raise ValueError(f"event {ref} belongs to {strategy!r}, not {self.strategy!r}")

    def mark(self, symbol: str, price: float) -> None:
        """Mark ``symbol`` to its latest traded price (for unrealised P&L and exposure)."""
        _check_price(symbol, price)
        self._marks[symbol] = price

    # ---- reading ------------------------------------------------------------------

    def last_price(self, symbol: str) -> float | None:
        mark = self._marks.get(symbol)
        if mark is not None:
            return mark
        pos = self._positions.get(symbol)
        return pos.last_fill_price if pos is not None else None

    def quantity(self, symbol: str) -> int:
        pos = self._positions.get(symbol)
        return pos.quantity if pos is not None else 0

    def positions(self) -> dict[str, int]:
        """Net quantity of every symbol with an open position."""
        return {s: p.quantity for s, p in sorted(self._positions.items()) if p.quantity}

    def _unrealised(self, pos: PositionState) -> Decimal:
        if pos.quantity == 0:
            return _ZERO
        last = to_decimal(self._marks.get(pos.symbol, pos.last_fill_price))
        return (last - pos.avg_price) * pos.quantity

    @property
    def realised_pnl(self) -> float:
        return float(sum((p.realised_pnl for p in self._positions.values()), _ZERO))

    @property
    def unrealised_pnl(self) -> float:
        return float(sum((self._unrealised(p) for p in self._positions.values()), _ZERO))

    @property
    def charges(self) -> float:
        return float(self._charges)

    @property
    def net_pnl(self) -> float:
        realised = sum((p.realised_pnl for p in self._positions.values()), _ZERO)
        unrealised = sum((self._unrealised(p) for p in self._positions.values()), _ZERO)
        return float(realised + unrealised - self._charges)

    @property
    def gross_exposure(self) -> float:
        return sum(
            abs(p.quantity) * self._marks.get(p.symbol, p.last_fill_price)
            for p in self._positions.values()
        )

    @property
    def orders(self) -> int:
        return self._orders

    @property
    def fills(self) -> int:
        return self._fills

    @property
    def rejections(self) -> int:
        return self._rejections

    def has_trade(self, trade_id: str) -> bool:
        return trade_id in self._trade_ids

    def snapshot(self) -> PortfolioSnapshot:
        """The rounded view of this strategy (every symbol ever traded, flat ones too)."""
        positions = tuple(
            PositionSnapshot(
                symbol=p.symbol,
                quantity=p.quantity,
                avg_price=float(p.avg_price.quantize(_AVG, ROUND_HALF_UP)) + 0.0,
                last_price=self._marks.get(p.symbol, p.last_fill_price),
                realised_pnl=_money(p.realised_pnl),
                unrealised_pnl=_money(self._unrealised(p)),
            )
            for _, p in sorted(self._positions.items())
        )
        realised = _money(sum((p.realised_pnl for p in self._positions.values()), _ZERO))
        unrealised = _money(sum((self._unrealised(p) for p in self._positions.values()), _ZERO))
        charges = _money(self._charges)
        return PortfolioSnapshot(
            name=self.strategy,
            positions=positions,
            realised_pnl=realised,
            unrealised_pnl=unrealised,
            charges=charges,
            net_pnl=money(realised + unrealised - charges),
            gross_exposure=money(self.gross_exposure),
            orders=self.orders,
            fills=self.fills,
            rejections=self.rejections,
        )

    # ---- state --------------------------------------------------------------------

    def state(self) -> PortfolioState:
        return PortfolioState(
            strategy=self.strategy,
            positions=[
                msgspec.structs.replace(p) for _, p in sorted(self._positions.items())
            ],
            marks=dict(sorted(self._marks.items())),
            charges=self._charges,
            trade_ids=sorted(self._trade_ids),
            order_ids=sorted(self._order_ids),
            rejected_signal_ids=sorted(self._rejected),
            counts=(self._orders, self._fills, self._rejections),
        )

    @classmethod
    def from_state(cls, state: PortfolioState) -> Portfolio:
        if state.v != STATE_VERSION:
            raise ValueError(f"unsupported portfolio state version {state.v}")
        pf = cls(state.strategy)
        for p in state.positions:
            pf._positions[p.symbol] = msgspec.structs.replace(p)
        pf._marks = dict(state.marks)
        pf._charges = state.charges
        pf._trade_ids = dict.fromkeys(state.trade_ids, 0)
        pf._order_ids = dict.fromkeys(state.order_ids, 0)
        pf._rejected = dict.fromkeys(state.rejected_signal_ids, 0)
        pf._orders, pf._fills, pf._rejections = state.counts or (
            len(pf._order_ids), len(pf._trade_ids), len(pf._rejected))
        return pf

    def to_json(self) -> bytes:
        return _ENCODER.encode(self.state())

    @classmethod
    def from_json(cls, data: bytes | str) -> Portfolio:
        """Restore a portfolio; raises ``msgspec.ValidationError``/``DecodeError`` if invalid."""
        return cls.from_state(msgspec.json.decode(data, type=PortfolioState))


def _strategy_of(event: LedgerEvent) -> str:
    if isinstance(event, RiskDecision):
        return event.signal.strategy
    if isinstance(event, Fill | Order | OrderRejected):
        return event.strategy
    raise TypeError(f"not a ledger event: {type(event).__name__}")


class Ledger:
    """Every strategy's :class:`Portfolio`, routed by the events' ``strategy``, and totals."""

    def __init__(self, strategies: Iterable[str] = ()) -> None:
        self._portfolios: dict[str, Portfolio] = {}
        self._marks: dict[str, float] = {}
        for name in strategies:
            self.portfolio(name)

    def portfolio(self, strategy: str) -> Portfolio:
        """The strategy's portfolio, created (marked to every known price) on first use."""
        pf = self._portfolios.get(strategy)
        if pf is None:
            pf = self._portfolios[strategy] = Portfolio(strategy)
            for symbol, price in self._marks.items():
                pf.mark(symbol, price)
        return pf

    def strategies(self) -> list[str]:
        return sorted(self._portfolios)

    def apply(self, event: LedgerEvent) -> bool:
        return self.portfolio(_strategy_of(event)).apply(event)

    def mark(self, symbol: str, price: float) -> None:
        _check_price(symbol, price)
        self._marks[symbol] = price
        for pf in self._portfolios.values():
            pf.mark(symbol, price)

    def snapshots(self) -> list[PortfolioSnapshot]:
        return [self._portfolios[name].snapshot() for name in self.strategies()]

    def totals(self, snapshots: Iterable[PortfolioSnapshot] | None = None) -> TotalsSnapshot:
        """Sum of the (rounded) strategy snapshots, so totals equal what the views show."""
        return totals_of(list(self.snapshots() if snapshots is None else snapshots))

    # ---- per-key form (the portfolio manager's changelog) -----------------------------
    #
    # pf/<strategy>          positions, charges and counts of one strategy
    # px/<symbol>            the mark
    # t|o|r/<strategy>/<id>  a seen trade, order or rejected signal (its IST day)

    def export(self, key: str) -> bytes | None:
        kind, _, rest = key.partition("/")
        if kind == "pf":
            pf = self._portfolios.get(rest)
            return None if pf is None else _ENCODER.encode(pf.book())
        if kind == "px":
            mark = self._marks.get(rest)
            return None if mark is None else _ENCODER.encode(mark)
        strategy, _, ident = rest.partition("/")
        pf = self._portfolios.get(strategy)
        day = None if pf is None else pf.seen_day(f"{kind}/{ident}")
        return None if day is None else _ENCODER.encode(day)

    @classmethod
    def from_items(cls, items: dict[str, bytes]) -> Ledger:
        """Rebuild from :meth:`export` values. Raises ``ValueError`` for a malformed one."""
        ledger = cls()
        try:
            for key, data in items.items():
                kind, _, rest = key.partition("/")
                if kind == "pf":
                    ledger.portfolio(rest).load_book(
                        msgspec.json.decode(data, type=PortfolioBook))
                elif kind == "px":
                    ledger._marks[rest] = msgspec.json.decode(data, type=float)
                elif kind in ("t", "o", "r"):
                    strategy, _, ident = rest.partition("/")
                    ledger.portfolio(strategy).remember(
                        f"{kind}/{ident}", msgspec.json.decode(data, type=int))
                else:
                    raise ValueError(f"unknown ledger key {key!r}")
        except msgspec.DecodeError as exc:
            raise ValueError(f"invalid ledger state: {exc}") from exc
        for symbol, price in ledger._marks.items():
            for pf in ledger._portfolios.values():
                pf.mark(symbol, price)
        return ledger

    def prune(self, before_day: int) -> list[str]:
        """Forget seen ids of days before ``before_day``; returns their changelog keys."""
        gone = []
        for name, pf in self._portfolios.items():
            gone += [f"{k[:1]}/{name}/{k[2:]}" for k in pf.prune(before_day)]
        return gone

    def to_json(self) -> bytes:
        return _ENCODER.encode(
            LedgerState(
                marks=dict(sorted(self._marks.items())),
                portfolios=[self._portfolios[n].state() for n in self.strategies()],
            )
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Ledger:
        state = msgspec.json.decode(data, type=LedgerState)
        if state.v != STATE_VERSION:
            raise ValueError(f"unsupported ledger state version {state.v}")
        ledger = cls()
        ledger._marks = dict(state.marks)
        for ps in state.portfolios:
            ledger._portfolios[ps.strategy] = Portfolio.from_state(ps)
        return ledger


__all__ = [
    "STATE_VERSION",
    "Ledger",
    "LedgerEvent",
    "LedgerState",
    "Portfolio",
    "PortfolioBook",
    "PortfolioSnapshot",
    "PortfolioState",
    "PositionSnapshot",
    "PositionState",
    "TotalsSnapshot",
]
