"""A deterministic paper broker: orders fill against the ticks fed to it.

Matching rules
--------------
- An order can only fill on a tick of its symbol whose ``exchange_ts`` is *later* than the
  order's own ``exchange_ts`` (the tick the strategy decided on): no look-ahead, and a
  redelivered or late old tick never fills anything.
- **Market** orders fill on that next tick at its price plus slippage, buys up and sells
  down, rounded *against* the trader onto the tick grid (ceil for buys, floor for sells).
- **Limit** orders fill when the tick crosses them: a buy when ``price <= limit`` at
  ``min(limit, price)``, a sell when ``price >= limit`` at ``max(limit, price)``, the
  price rounded onto the tick grid against the trader.
- The tick grid is each instrument's (the instruments file's ``tick_size``: ₹0.01 for a
  stock under ₹250, ₹0.05 above, the contract's for F&O); ``PaperConfig.tick_size`` for
  symbols the file does not list.
- Day orders: an order can only fill on a tick of its own IST day. The first tick of its
  symbol on a later day finds it expired (NSE cancels day orders unfilled at the close):
  it is cancelled with :data:`EXPIRED`, and the trading engine publishes that like any
  cancellation, so the risk manager, which keeps the previous day's orders pending until
  their outcome, always gets one, and no order fills a day late. Orders whose symbol does
  not tick again expire at the roll after next of their symbol's ticks partition
  (:meth:`PaperBroker.expire`), so no open order outlives its partition's next two days.
  Square-offs are the exception: the risk manager's closing MARKET orders never expire
  (an MIS position is never carried), they fill on their symbol's next tick, as before.
- An order fills completely in one execution; ``trade_id = stable_id("paper",
  client_order_id, seq)`` with ``seq`` counting the order's executions from 1.
- Charges come from :class:`~alphaspt.portfolio.charges.ContractNotes`: per order
  (cumulative turnover, so the ₹20 cap holds across executions) and per contract-note
  bucket of the order's strategy and IST day (STT rounded to the rupee once per
  strategy, day, symbol, segment and side; the DP charge once per delivery-sold scrip).
  The buckets are derived from the book, so a restored broker charges exactly as one that
  never stopped.

Placement is idempotent on ``client_order_id``. Invalid orders (non-positive quantity, a
limit order without a positive limit on the tick grid, a client id Kite would not accept
as a tag) are rejected at placement, recorded in the book like any order, and answered
with the same deterministic :class:`OrderRejected` every time.

Everything is a pure function of the calls made (timestamps for ``ingest_ts`` come from
the injected clock), and :meth:`PaperBroker.snapshot` / :meth:`PaperBroker.restore` carry
the whole state across a restart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from alphaspt.brokers.base import (
    BrokerOrder,
    BrokerOrderStatus,
    OrderAck,
    cancellation,
    is_valid_tag,
)
from alphaspt.core.clock import ist_day, ist_day_start
from alphaspt.core.events import (
    CANCELLED_PREFIX,
    Fill,
    Order,
    OrderRejected,
    OrderType,
    Side,
    Tick,
    now_ns,
    stable_id,
)
from alphaspt.market import Instruments
from alphaspt.portfolio.charges import (
    ZERODHA_NSE,
    ChargeCalculator,
    ChargeSchedule,
    ContractNotes,
    to_decimal,
    turnover_of,
)
from alphaspt.risk.squareoff import is_square_off

STATE_VERSION = 1
EXPIRED = "day order expired unfilled at the close"
"""Why an order of an earlier IST day was cancelled (``cancelled: `` + this)."""


class PaperConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    slippage_bps: float = Field(default=2.0, ge=0, le=1000)
    """Market orders pay this many basis points of the tick price (buys up, sells down)."""
    tick_size: float = Field(default=0.05, gt=0)
    """NSE price grid for equities."""
    charges: ChargeSchedule = ZERODHA_NSE


class _PaperOrder(msgspec.Struct, kw_only=True):
    order: Order
    broker_order_id: str
    status: BrokerOrderStatus
    filled_quantity: int = 0
    turnover: str = "0"
    """Exact cumulative turnover of the executions (a decimal string)."""
    executions: int = 0
    reason: str = ""
    rejection: OrderRejected | None = None

    def view(self) -> BrokerOrder:
        avg = None
        if self.filled_quantity:
            avg = float(Decimal(self.turnover) / self.filled_quantity)
        return BrokerOrder(
            client_order_id=self.order.client_order_id,
            broker_order_id=self.broker_order_id,
            order=self.order,
            status=self.status,
            filled_quantity=self.filled_quantity,
            average_price=avg,
            reason=self.reason,
        )


class _PaperState(msgspec.Struct, kw_only=True):
    v: int = STATE_VERSION
    orders: list[_PaperOrder] = msgspec.field(default_factory=list)


_ORDER_ENCODER = msgspec.json.Encoder()
_ORDER_DECODER = msgspec.json.Decoder(_PaperOrder)


def _expires(po: _PaperOrder, before_ts: int) -> bool:
    """An open order placed before ``before_ts`` (a later day's start) expires, unless it
    is a square-off."""
    return po.order.exchange_ts < before_ts and not is_square_off(po.order.signal_id)


class PaperBroker:
    """The paper :class:`~alphaspt.brokers.base.Broker`."""

    def __init__(
        self, config: PaperConfig | None = None, *, clock: Callable[[], int] = now_ns,
        instruments: Instruments | None = None,
    ) -> None:
        """``instruments``: each symbol's tick (the instruments file); others use
        ``config.tick_size``."""
        self.config = config or PaperConfig()
        self._instruments = instruments
        self._clock = clock
        self._notes = ContractNotes(ChargeCalculator(self.config.charges))
        self._tick = to_decimal(self.config.tick_size)
        self._slip = to_decimal(self.config.slippage_bps) / Decimal(10_000)
        self._orders: dict[str, _PaperOrder] = {}
        self._open: dict[str, list[str]] = {}
        """Open client ids per symbol, in placement order."""

    # ---- Broker -------------------------------------------------------------------

    def place(self, order: Order) -> OrderAck:
        return self._enter(order, self._invalid(order))

    def refuse(self, order: Order, reason: str) -> OrderAck:
        """Record ``order`` as refused without placing it (the trading engine's own refusal,
        e.g. a square-off with nothing left to close), idempotently like :meth:`place`."""
        return self._enter(order, reason)

    def _enter(self, order: Order, reason: str) -> OrderAck:
        """Book ``order``: open, or refused for ``reason`` (idempotent on its client id)."""
        existing = self._orders.get(order.client_order_id)
        if existing is not None:
            return OrderAck(order=existing.view(), duplicate=True, rejection=existing.rejection)
        po = _PaperOrder(
            order=order,
            broker_order_id="P" + stable_id("paper-order", order.client_order_id)[:15],
            status=BrokerOrderStatus.OPEN,
        )
        if reason:
            po.status = BrokerOrderStatus.REJECTED
            po.reason = reason
            po.rejection = OrderRejected(
                event_id=stable_id("paper-reject", order.client_order_id),
                exchange_ts=order.exchange_ts,
                ingest_ts=self._clock(),
                client_order_id=order.client_order_id,
                signal_id=order.signal_id,
                strategy=order.strategy,
                symbol=order.symbol,
                reason=reason,
            )
        else:
            self._open.setdefault(order.symbol, []).append(order.client_order_id)
        self._orders[order.client_order_id] = po
        return OrderAck(order=po.view(), duplicate=False, rejection=po.rejection)

    def lookup(self, client_order_id: str) -> BrokerOrder | None:
        po = self._orders.get(client_order_id)
        return po.view() if po is not None else None

    def order_book(self) -> list[BrokerOrder]:
        return [po.view() for po in self._orders.values()]

    def poll(self) -> list[Fill | OrderRejected]:
        """Paper orders only fill on ticks."""
        return []

    @property
    def alert(self) -> str:
        return ""

    def open_orders(self) -> list[BrokerOrder]:
        return [po.view() for po in self._orders.values() if po.status is BrokerOrderStatus.OPEN]

    def cancel(self, client_order_id: str, reason: str) -> BrokerOrder | None:
        """Cancel a working order: its unfilled quantity will never fill. Returns the
        cancelled entry, or ``None`` when the order is unknown or no longer open (so a
        repeated cancel does nothing)."""
        po = self._orders.get(client_order_id)
        if po is None or po.status is not BrokerOrderStatus.OPEN:
            return None
        po.status = BrokerOrderStatus.CANCELLED
        po.reason = reason
        ids = self._open.get(po.order.symbol, [])
        if client_order_id in ids:
            ids.remove(client_order_id)
        if not ids:
            self._open.pop(po.order.symbol, None)
        return po.view()

    def on_tick(self, tick: Tick, *, only: str | None = None) -> list[Fill | OrderRejected]:
        """Fill the open orders of ``tick.symbol`` that this tick executes, oldest first
        (``only``: just the order with that client id)."""
        if not (math.isfinite(tick.price) and tick.price > 0):
            raise ValueError(f"tick {tick.event_id}: price must be positive, got {tick.price!r}")
        ids = self._open.get(tick.symbol)
        if not ids:
            return []
        price = to_decimal(tick.price)
        day_start = ist_day_start(ist_day(tick.exchange_ts))
        out: list[Fill | OrderRejected] = []
        still_open: list[str] = []
        for cid in ids:
            po = self._orders[cid]
            if only is not None and only != cid:
                still_open.append(cid)
                continue
            if _expires(po, day_start):
                out.append(self._expire(po))
                continue
            fill_price = (
                self._execution_price(po.order, price)
                if tick.exchange_ts > po.order.exchange_ts else None
            )
            if fill_price is None:
                still_open.append(cid)
                continue
            out.append(self._execute(po, fill_price, tick))
        if still_open:
            self._open[tick.symbol] = still_open
        else:
            del self._open[tick.symbol]
        return out

    def expire(self, before_ts: int,
               owns: Callable[[str], bool] | None = None) -> list[OrderRejected]:
        """Expire every open order placed before ``before_ts`` (the trading engine passes
        the start of the day before the new one) of the symbols ``owns`` accepts (default all),
        whatever their ticks."""
        out: list[OrderRejected] = []
        for symbol in [s for s in self._open if owns is None or owns(s)]:
            keep = []
            for cid in self._open[symbol]:
                po = self._orders[cid]
                if _expires(po, before_ts):
                    out.append(self._expire(po))
                else:
                    keep.append(cid)
            if keep:
                self._open[symbol] = keep
            else:
                del self._open[symbol]
        return out

    def _expire(self, po: _PaperOrder) -> OrderRejected:
        """Cancel an open order of an earlier day (the caller takes it off ``_open``)."""
        po.status = BrokerOrderStatus.CANCELLED
        po.reason = CANCELLED_PREFIX + EXPIRED  # as cancel() books the engine's cancellations
        return cancellation(po.order, po.order.quantity - po.filled_quantity, EXPIRED,
                            self._clock())

    # ---- matching -----------------------------------------------------------------

    def _invalid(self, order: Order) -> str:
        if not is_valid_tag(order.client_order_id):
            return "client order id must be 1-20 alphanumeric characters (Kite order tag)"
        if not order.symbol:
            return "symbol must not be empty"
        if order.quantity <= 0:
            return f"quantity must be positive, got {order.quantity}"
        if order.order_type is OrderType.LIMIT:
            limit = order.limit_price
            if limit is None or not math.isfinite(limit) or limit <= 0:
                return f"limit order needs a positive limit price, got {limit!r}"
            tick = self._tick_of(order.symbol)
            if to_decimal(limit) % tick != 0:
                return f"limit price {limit} is not a multiple of the tick size {tick}"
        return ""

    def _tick_of(self, symbol: str) -> Decimal:
        if self._instruments is None:
            return self._tick
        return self._instruments.tick_size(symbol, self._tick)

    def _execution_price(self, order: Order, price: Decimal) -> Decimal | None:
        if order.order_type is OrderType.MARKET:
            tick = self._tick_of(order.symbol)
            if order.side is Side.BUY:
                raw = price * (1 + self._slip)
                return (raw / tick).to_integral_value(ROUND_CEILING) * tick
            raw = price * (1 - self._slip)
            ticks = (raw / tick).to_integral_value(ROUND_FLOOR)
            return max(ticks, Decimal(1)) * tick
        if order.limit_price is None:  # refused at placement; never open
            return None
        limit = to_decimal(order.limit_price)
        tick = self._tick_of(order.symbol)
        # an off-grid print fills on the grid, against the trader (never beyond the limit)
        if order.side is Side.BUY:
            on_grid = (price / tick).to_integral_value(ROUND_CEILING) * tick
            return min(limit, on_grid) if price <= limit else None
        on_grid = (price / tick).to_integral_value(ROUND_FLOOR) * tick
        return max(limit, on_grid) if price >= limit else None

    def _execute(self, po: _PaperOrder, price: Decimal, tick: Tick) -> Fill:
        order = po.order
        quantity = order.quantity - po.filled_quantity
        prior = Decimal(po.turnover)
        charges = self._notes.charge(
            account=order.strategy, day=ist_day(order.exchange_ts), symbol=order.symbol,
            product=order.product, side=order.side, quantity=quantity, price=price,
            prior_turnover=prior)
        po.executions += 1
        po.filled_quantity += quantity
        po.turnover = str(prior + turnover_of(quantity, price))
        po.status = BrokerOrderStatus.COMPLETE
        trade_id = stable_id("paper", order.client_order_id, po.executions)
        return Fill(
            event_id=trade_id,
            exchange_ts=tick.exchange_ts,
            ingest_ts=self._clock(),
            trade_id=trade_id,
            client_order_id=order.client_order_id,
            strategy=order.strategy,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=float(price),
            charges=charges,
            signal_exchange_ts=order.exchange_ts,
            product=order.product,
        )

    def _book_note(self, po: _PaperOrder, sign: int) -> None:
        """Count (``sign`` 1) or take back (-1) a restored order's turnover on its note."""
        o = po.order
        self._notes.record(account=o.strategy, day=ist_day(o.exchange_ts), symbol=o.symbol,
                           product=o.product, side=o.side,
                           turnover=sign * Decimal(po.turnover))

    # ---- per-key state (the trading engine's changelog) ------------------------------

    def export(self, client_order_id: str) -> bytes | None:
        """One order's book entry as JSON (``None`` if the book has none)."""
        po = self._orders.get(client_order_id)
        return None if po is None else _ORDER_ENCODER.encode(po)

    def load(self, data: bytes) -> str:
        """Add one :meth:`export`-ed entry; returns its client id."""
        po = _ORDER_DECODER.decode(data)
        cid = po.order.client_order_id
        previous = self._orders.get(cid)
        if previous is not None:
            self._book_note(previous, -1)
        self._orders[cid] = po
        self._book_note(po, 1)
        if po.status is BrokerOrderStatus.OPEN:
            ids = self._open.setdefault(po.order.symbol, [])
            if cid not in ids:
                ids.append(cid)
                ids.sort(key=lambda c: (self._orders[c].order.exchange_ts, c))
        return cid

    def forget_finished(self, before_ts: int,
                        owns: Callable[[str], bool] | None = None) -> list[str]:
        """Forget finished orders placed before ``before_ts`` of the symbols ``owns``
        accepts (their day is over, so no signal of theirs can come again); returns their
        client ids."""
        gone = [cid for cid, po in self._orders.items()
                if po.status is not BrokerOrderStatus.OPEN and po.order.exchange_ts < before_ts
                and (owns is None or owns(po.order.symbol))]
        for cid in gone:
            del self._orders[cid]
        # Those symbols' buckets of days before before_ts's are over (an order still open
        # from such a day that fills later starts a new bucket).
        self._notes.prune(ist_day(before_ts), owns)
        return gone

    # ---- state --------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole book as JSON (orders in placement order, with fill progress)."""
        return msgspec.json.encode(
            _PaperState(orders=list(self._orders.values()))
        )

    @classmethod
    def restore(
        cls,
        data: bytes | str,
        config: PaperConfig | None = None,
        *,
        clock: Callable[[], int] = now_ns,
        instruments: Instruments | None = None,
    ) -> PaperBroker:
        """A broker with the book of :meth:`snapshot`; open orders keep waiting for ticks.

        ``config`` applies from now on (fills already made keep their prices); raises
        ``ValueError`` for an unknown state version, ``msgspec`` errors for bad JSON.
        """
        state = msgspec.json.decode(data, type=_PaperState)
        if state.v != STATE_VERSION:
            raise ValueError(f"unsupported paper broker state version {state.v}")
        broker = cls(config, clock=clock, instruments=instruments)
        for po in state.orders:
            cid = po.order.client_order_id
            if cid in broker._orders:
                raise ValueError(f"paper broker state lists order {cid} twice")
            broker._orders[cid] = po
            broker._book_note(po, 1)
            if po.status is BrokerOrderStatus.OPEN:
                broker._open.setdefault(po.order.symbol, []).append(cid)
        return broker
