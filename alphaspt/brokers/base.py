"""What the trading engine needs from a broker, paper or live (Kite Connect).

Idempotence rests on the **client order id**: derived deterministically from the signal id
(:func:`client_order_id`), carried to Kite as the order ``tag`` (alphanumeric, at most 20
characters), and used to find an order again. Kite does not refuse a repeated tag, so the
engine records its intent before calling :meth:`Broker.place`, treats a timeout as
:class:`OrderOutcomeUnknown` (looked up with :meth:`Broker.lookup`, never retried
blindly), and reconciles with :meth:`Broker.order_book` on start-up before placing
anything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Final, Protocol, runtime_checkable

import msgspec

from alphaspt.core.events import CANCELLED_PREFIX, Fill, Order, OrderRejected, Tick, stable_id
from alphaspt.exceptions import AlphasptError, TemporaryFailure

CLIENT_ORDER_ID_PREFIX: Final = "AP"
CLIENT_ORDER_ID_LENGTH: Final = 20
_CLIENT_ORDER_ID_RE: Final = re.compile(r"^AP[0-9a-f]{18}$")
_TAG_RE: Final = re.compile(r"^[A-Za-z0-9]{1,20}$")


def client_order_id(signal_id: str) -> str:
    """The order's client id for a signal: ``AP`` + 18 hex digits (20 chars, alphanumeric).

    Deterministic (a redelivered signal maps to the same id) and 72 bits wide: among a
    million orders the chance of any collision is about 1e-10.
    """
    if not signal_id:
        raise ValueError("signal id must not be empty")
    digest = hashlib.blake2b(signal_id.encode(), digest_size=9, person=b"alphaspt-coid")
    return CLIENT_ORDER_ID_PREFIX + digest.hexdigest()


def cancellation(order: Order, unfilled: int, why: str, ingest_ts: int) -> OrderRejected:
    """The ``orders.rejected`` event of a working order cancelled for ``why`` (kill switch,
    flatten, square-off, a day order expired): ``unfilled`` of it will never fill. Its id
    is the order's, once: an order is cancelled at most once."""
    return OrderRejected(
        event_id=stable_id("cancel", order.client_order_id), exchange_ts=order.exchange_ts,
        ingest_ts=ingest_ts, client_order_id=order.client_order_id,
        signal_id=order.signal_id, strategy=order.strategy, symbol=order.symbol,
        reason=CANCELLED_PREFIX + why, side=order.side, quantity=unfilled)


def is_client_order_id(tag: str | None) -> bool:
    """Whether a broker order tag is one of ours (for reconciling the broker's order book)."""
    return tag is not None and _CLIENT_ORDER_ID_RE.match(tag) is not None


def is_valid_tag(tag: str) -> bool:
    """Kite's rule for an order tag: 1-20 alphanumeric characters."""
    return _TAG_RE.match(tag) is not None


class BrokerOrderStatus(StrEnum):
    """The lifecycle states the engine cares about (Kite's names)."""

    OPEN = "OPEN"
    """Accepted, (partly) unfilled."""
    COMPLETE = "COMPLETE"
    """Fully filled."""
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self is not BrokerOrderStatus.OPEN


class BrokerOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the broker's order book, as the engine sees it."""

    client_order_id: str
    broker_order_id: str
    order: Order
    status: BrokerOrderStatus
    filled_quantity: int = 0
    average_price: float | None = None
    """Quantity-weighted fill price; ``None`` until something filled."""
    reason: str = ""
    """Why the order was rejected or cancelled."""

    @property
    def pending_quantity(self) -> int:
        return 0 if self.status.terminal else self.order.quantity - self.filled_quantity


class OrderAck(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to :meth:`Broker.place`."""

    order: BrokerOrder
    """The book entry: the new order, or the existing one for a repeated client id."""
    duplicate: bool = False
    """``True`` when an order with this client id already existed: nothing was placed."""
    recovered: bool = False
    """The order exists at the broker but was not in the engine's records (placed just
    before a crash, found by reconciliation): nothing was placed now, and the engine
    publishes it as submitted, since the crash may have lost that."""
    rejection: OrderRejected | None = None
    """Set when the order was refused (the event for ``orders.rejected``; deterministic id,
    so publishing it again for a duplicate is harmless)."""

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    @property
    def status(self) -> BrokerOrderStatus:
        return self.order.status


class BrokerError(AlphasptError):
    """The broker refused a request in a way that is not an order rejection."""


class BrokerUnavailable(TemporaryFailure):
    """The broker could not be reached; nothing was sent. Safe to retry."""


class OrderOutcomeUnknown(TemporaryFailure):
    """A placement may or may not have reached the broker (e.g. a timeout after sending).

    Never place again on this: look the order up by ``client_order_id`` (until the broker
    answers), then act on what it says.
    """

    def __init__(self, client_order_id: str, message: str = "") -> None:
        super().__init__(message or f"outcome of order {client_order_id} is unknown")
        self.client_order_id = client_order_id


@runtime_checkable
class Broker(Protocol):
    """A broker as the trading engine uses it (synchronous calls)."""

    def place(self, order: Order) -> OrderAck:
        """Place ``order`` unless an order with its ``client_order_id`` exists.

        Returns the book entry (``duplicate=True`` for an existing one: never a second
        order). An invalid order is answered with ``status=REJECTED`` and ``rejection``.
        Raises :class:`BrokerUnavailable` when nothing was sent and
        :class:`OrderOutcomeUnknown` when the request may have been sent.
        """
        ...

    def lookup(self, client_order_id: str) -> BrokerOrder | None:
        """The order placed with this client id, or ``None`` if the broker has none."""
        ...

    def order_book(self) -> list[BrokerOrder]:
        """Today's orders that carry one of our client ids, oldest first."""
        ...

    def cancel(self, client_order_id: str, reason: str) -> BrokerOrder | None:
        """Cancel a working (open, unfilled or partly filled) order. Returns the cancelled
        entry, or ``None`` if there is no such open order (a repeated cancel is a no-op)."""
        ...

    def on_tick(self, tick: Tick) -> list[Fill | OrderRejected]:
        """Advance with market data; return the executions and rejections now known.

        The paper broker matches its open orders against the tick; a live broker returns
        what its order book says changed since the previous call.
        """
        ...

    def poll(self) -> list[Fill | OrderRejected]:
        """Executions and rejections known without a tick (a live broker re-reads its
        order book, rate-bounded; the paper broker has none)."""
        ...

    def export(self, client_order_id: str) -> bytes | None:
        """One order's record for the engine's changelog (``None``: none)."""
        ...

    def load(self, data: bytes) -> str:
        """Take back an :meth:`export`-ed record; returns its client id."""
        ...

    def forget_finished(self, before_ts: int,
                        owns: Callable[[str], bool] | None = None) -> list[str]:
        """Forget finished orders placed before ``before_ts`` (of the symbols ``owns``
        accepts, default all); returns their client ids."""
        ...

    @property
    def alert(self) -> str:
        """Why (some) orders cannot be placed now and someone must act; empty if none."""
        ...
