"""Position accounting: the one average-cost rule, and FIFO round trips for reports.

Pure and exact: prices are taken as the decimals they print as (``1000.05`` is
``Decimal('1000.05')``), quantities are integers, and every sum and product is exact
decimal arithmetic. The only division, the weighted average price of an increase, is
carried to 34 significant digits (far below a paisa on any position), so realised P&L
is exact to the paisa however many fills a position has.

Average cost (net position per symbol), used by the risk state and the portfolio ledger:

- A fill that opens or increases a position moves the average price to the quantity-
  weighted mean of the position and the fill.
- A fill against the position realises ``closed x (price - average) x sign(position)``;
  the average is unchanged while the position keeps its sign; at zero it is 0.
- A fill that goes through zero closes the old position and opens the remainder at the
  fill price.

FIFO (:func:`round_trips`): the same fills, matched first-in first-out into closed round
trips with entry and exit times, quantities, prices and P&L. Over a whole position's life
both methods realise the same total; they differ in how it is split over time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from decimal import Context, Decimal
from typing import NamedTuple, Protocol

from alphaspt.core.events import Side

_CONTEXT = Context(prec=34)
_ZERO = Decimal(0)


def to_decimal(value: float | int | Decimal) -> Decimal:
    """A price or amount as the decimal it prints as; raises ``ValueError`` if not finite."""
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


class Step(NamedTuple):
    """A position after one fill, and what the fill realised."""

    quantity: int
    """Signed: positive long, negative short."""
    avg_price: Decimal
    realised: Decimal
    """Gross P&L the fill realised (charges are the caller's)."""
    closed: int
    """Quantity the fill closed (0 when it only opened or increased)."""


def average_cost(
    quantity: int, avg_price: float | Decimal, signed_quantity: int, price: float | Decimal
) -> Step:
    """Apply one fill of ``signed_quantity`` (BUY positive) at ``price`` to a position of
    ``quantity`` at ``avg_price``. Raises ``ValueError`` for a zero quantity or a price
    that is not positive and finite."""
    if signed_quantity == 0:
        raise ValueError("a fill must have a non-zero quantity")
    px = to_decimal(price)
    if px <= 0:
        raise ValueError(f"price must be positive, got {price!r}")
    avg = to_decimal(avg_price) if quantity else _ZERO
    new_q = quantity + signed_quantity
    if quantity == 0 or (quantity > 0) == (signed_quantity > 0):
        cost = avg * abs(quantity) + px * abs(signed_quantity)
        return Step(new_q, _CONTEXT.divide(cost, Decimal(abs(new_q))), _ZERO, 0)
    closed = min(abs(quantity), abs(signed_quantity))
    direction = 1 if quantity > 0 else -1
    realised = (px - avg) * closed * direction
    if new_q == 0:
        new_avg = _ZERO
    elif (new_q > 0) != (quantity > 0):
        new_avg = px  # through zero: the remainder is a new position
    else:
        new_avg = avg
    return Step(new_q, new_avg, realised, closed)


class Execution(Protocol):
    """What :func:`round_trips` reads of a fill (``alphaspt.core.events.Fill`` fits)."""

    @property
    def exchange_ts(self) -> int: ...
    @property
    def side(self) -> Side: ...
    @property
    def quantity(self) -> int: ...
    @property
    def price(self) -> float: ...


class RoundTrip(NamedTuple):
    """One FIFO-matched lot from entry to exit."""

    direction: int
    """1 long (bought, then sold), -1 short (sold, then bought back)."""
    quantity: int
    entry_ts: int
    exit_ts: int
    entry_price: Decimal
    exit_price: Decimal

    @property
    def pnl(self) -> Decimal:
        """Gross P&L: ``(exit - entry) x quantity x direction``."""
        return (self.exit_price - self.entry_price) * self.quantity * self.direction


class _Lot:
    __slots__ = ("price", "quantity", "ts")

    def __init__(self, ts: int, quantity: int, price: Decimal) -> None:
        self.ts, self.quantity, self.price = ts, quantity, price


class FifoLots:
    """Open lots of one symbol, matched first-in first-out.

    Bound: one lot per opening fill still (partly) open; closing fills remove lots.
    """

    def __init__(self) -> None:
        self._lots: deque[_Lot] = deque()
        self._direction = 0

    @property
    def quantity(self) -> int:
        """Signed open quantity."""
        return self._direction * sum(lot.quantity for lot in self._lots)

    def __len__(self) -> int:
        return len(self._lots)

    def apply(self, fill: Execution) -> list[RoundTrip]:
        """Book one fill; returns the round trips it closed (oldest lot first)."""
        if fill.quantity <= 0:
            raise ValueError(f"fill quantity must be positive, got {fill.quantity}")
        px = to_decimal(fill.price)
        if px <= 0:
            raise ValueError(f"price must be positive, got {fill.price!r}")
        sign = fill.side.sign
        remaining = fill.quantity
        closed: list[RoundTrip] = []
        while remaining and self._lots and self._direction != sign:
            lot = self._lots[0]
            take = min(lot.quantity, remaining)
            closed.append(RoundTrip(self._direction, take, lot.ts, fill.exchange_ts,
                                    lot.price, px))
            lot.quantity -= take
            remaining -= take
            if not lot.quantity:
                self._lots.popleft()
        if not self._lots:
            self._direction = 0
        if remaining:
            self._direction = sign
            self._lots.append(_Lot(fill.exchange_ts, remaining, px))
        return closed


def round_trips(fills: Iterable[Execution]) -> Iterator[RoundTrip]:
    """The closed FIFO round trips of one symbol's fills, in the order given (sort them
    by time first); an open remainder yields nothing."""
    lots = FifoLots()
    for fill in fills:
        yield from lots.apply(fill)


__all__ = ["Execution", "FifoLots", "RoundTrip", "Step", "average_cost", "round_trips",
           "to_decimal"]
