"""The Kite Connect broker: orders through the real ``kiteconnect`` client.

Kite's order book is the truth (kite-protocol.md §4, §7). Rules:

- **Tag = client order id** on every order, with the strategy's product, variety
  ``regular`` and ``market_protection`` on MARKET/SL-M orders.
- **Reconcile before placing**: the first placement after start-up (or a restore) reads
  ``orders()`` and indexes our tags; a signal whose order is already there (the engine died
  after Kite accepted it) is answered with that order (``recovered``), never placed again.
- **Unknown outcome**: a timeout, a transport error, ``NetworkException``/``DataException``
  or a 5xx may have created the order. It is looked up by tag in ``orders()`` for up to
  ``lookup_window_s``; found → that order; still absent → refused with a reason saying so
  (fail closed; a late appearance shows up as a position difference, which halts the
  symbol). Never retried blindly.
- **429** is a definite "not placed": wait (exponential back-off, up to 60 s in all) and
  send the same order again, so a throttled order is slowed down, never lost.
- **Account limits**: every placement first takes a slot of the account's
  :class:`AccountLimiter` (10/s, 400/min, 5,000/day).
- **Errors**: ``GeneralException``/``InputException``/``OrderException`` with a 4xx code
  is a deterministic rejection (Kite's Margin/Holding errors arrive as
  ``GeneralException(400)``); ``TokenException`` (or the token's 06:00 IST expiry) halts
  the account's orders with a reason saying to log in again, until a new token is stored.
- **Fills** come from ``trades()`` (one :class:`Fill` per Kite trade, ``trade_id`` = Kite's),
  rejections from ``orders()`` with Kite's ``status_message``; both are read at most every
  ``poll_interval_s`` while orders are open, sooner after :meth:`notify` (an order update
  from the ticker: only a trigger, since updates may be dropped or reordered).
- **Positions**: Kite's day positions per symbol are compared with the fills of our tagged
  orders at start-up and every ``reconcile_interval_s``; a symbol that differs is halted
  (its new orders refused, the difference logged) until the two agree again.

Bounds: records of the current IST day (the engine forgets finished ones at day change);
per order at most one record per Kite trade.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from alphaspt.brokers.base import (
    BrokerError,
    BrokerOrder,
    BrokerOrderStatus,
    OrderAck,
    is_client_order_id,
)
from alphaspt.brokers.kite.limits import AccountLimiter
from alphaspt.brokers.kite.tokens import IST, AccessToken, TokenStore
from alphaspt.core.config import KiteConfig
from alphaspt.core.events import (
    Fill,
    Order,
    OrderRejected,
    OrderType,
    Tick,
    now_ns,
    stable_id,
)
from alphaspt.portfolio.charges import ChargeCalculator, to_decimal, turnover_of

log = logging.getLogger(__name__)

VARIETY = "regular"
LOGIN_AGAIN = "log in again with `alphaspt kite login`"
_TERMINAL = {"COMPLETE": BrokerOrderStatus.COMPLETE, "REJECTED": BrokerOrderStatus.REJECTED,
             "CANCELLED": BrokerOrderStatus.CANCELLED}
_MAX_BACKOFF_S = 60.0


class KiteClient(Protocol):
    """The part of ``kiteconnect.KiteConnect`` the broker uses."""

    def place_order(self, variety: str, exchange: str, tradingsymbol: str,
                    transaction_type: str, quantity: int, product: str, order_type: str,
                    **kwargs: Any) -> str: ...
    def modify_order(self, variety: str, order_id: str, **kwargs: Any) -> str: ...
    def cancel_order(self, variety: str, order_id: str) -> str: ...
    def orders(self) -> list[dict[str, Any]]: ...
    def trades(self) -> list[dict[str, Any]]: ...
    def positions(self) -> dict[str, list[dict[str, Any]]]: ...
    def set_access_token(self, access_token: str) -> None: ...


class _Record(msgspec.Struct, kw_only=True):
    order: Order
    broker_order_id: str = ""
    status: BrokerOrderStatus = BrokerOrderStatus.OPEN
    filled_quantity: int = 0
    turnover: str = "0"
    reason: str = ""
    trades: list[str] = msgspec.field(default_factory=list)
    """Kite trade ids already turned into fills."""
    rejection: OrderRejected | None = None

    def view(self) -> BrokerOrder:
        avg = float(Decimal(self.turnover) / self.filled_quantity) \
            if self.filled_quantity else None
        return BrokerOrder(client_order_id=self.order.client_order_id,
                           broker_order_id=self.broker_order_id, order=self.order,
                           status=self.status, filled_quantity=self.filled_quantity,
                           average_price=avg, reason=self.reason)


_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder(_Record)


def _client(config: KiteConfig, api_key: str) -> KiteConnect:
    return KiteConnect(api_key, root=config.api_root, timeout=config.timeout_s)


class KiteBroker:
    """The live :class:`~alphaspt.brokers.base.Broker` for one Kite account."""

    def __init__(self, config: KiteConfig, tokens: TokenStore, limiter: AccountLimiter, *,
                 client: KiteClient | None = None, charges: ChargeCalculator | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not config.api_key:
            raise ValueError("Kite needs ALPHASPT_KITE__API_KEY")
        self.config = config
        self.tokens = tokens
        self.limiter = limiter
        self.client: KiteClient = client or _client(config, config.api_key)
        self._calc = charges or ChargeCalculator()
        self._clock = clock
        self._sleep = sleep
        self._records: dict[str, _Record] = {}
        self._kite_book: dict[str, dict[str, Any]] | None = None
        """Kite's orders by tag, read by the reconciliation (``None``: not yet)."""
        self._token: AccessToken | None = None
        self.halted: str = ""
        """Why the account's orders are halted (a token problem), empty if not."""
        self.symbol_halts: dict[str, str] = {}
        self._dirty = False
        self._last_poll = 0.0
        self._last_reconcile = 0.0
        self.placements = 0
        self.throttled = 0
        """429 answers seen (each was retried)."""

    # ---- session ------------------------------------------------------------------

    def _session(self) -> str:
        """Empty when a usable token is set, else why orders are halted."""
        token = self.tokens.read()
        if token is None:
            return f"not logged in to Kite: {LOGIN_AGAIN}"
        if token != self._token:
            self.client.set_access_token(token.token)
            self._token = token
            if self.halted:
                log.warning("kite: a new access token is stored; orders resume")
            self.halted = ""
        if token.expired(datetime.now(IST)):
            self._halt(f"the Kite session expired at 06:00 IST: {LOGIN_AGAIN}")
        return self.halted

    @property
    def alert(self) -> str:
        return "; ".join(filter(None, [self.halted, *self.symbol_halts.values()]))

    def _halt(self, reason: str) -> None:
        if reason != self.halted:
            log.error("kite: orders halted for account %s: %s", self.config.api_key, reason)
        self.halted = reason

    # ---- Broker -------------------------------------------------------------------

    def place(self, order: Order) -> OrderAck:
        cid = order.client_order_id
        known = self._records.get(cid)
        if known is not None:
            return OrderAck(order=known.view(), duplicate=True, rejection=known.rejection)
        reason = self._session() or self._reconcile_if_needed()
        if not reason:
            existing = (self._kite_book or {}).get(cid)
            if existing is not None:
                rec = self._adopt(order, existing)
                log.warning("kite: order %s (%s) was placed before a restart; not placing "
                            "it again", cid, rec.broker_order_id)
                return OrderAck(order=rec.view(), duplicate=True, recovered=True)
            reason = self.symbol_halts.get(order.symbol, "") or self.limiter.acquire() or ""
        if reason:
            return self._reject(order, reason)
        return self._send(order)

    def _send(self, order: Order) -> OrderAck:
        cid = order.client_order_id
        rec = _Record(order=order)
        self._records[cid] = rec  # the intent, before anything is sent
        params: dict[str, Any] = {"tag": cid, "product": order.product.value}
        if order.order_type is OrderType.LIMIT:
            params["price"] = order.limit_price
        else:
            params["market_protection"] = self.config.market_protection
        backoff = 0.25
        waited = 0.0
        while True:
            try:
                rec.broker_order_id = str(self.client.place_order(
                    VARIETY, "NSE", order.symbol, order.side.value, order.quantity,
                    order_type=order.order_type.value, **params))
                self.placements += 1
                self._dirty = True
                log.info("kite: order %s placed as %s", cid, rec.broker_order_id)
                return OrderAck(order=rec.view())
            except kex.NetworkException as exc:
                if exc.code != 429:
                    return self._unknown(rec, exc)
                self.throttled += 1
                if waited >= _MAX_BACKOFF_S:
                    del self._records[cid]
                    return self._reject(order, f"Kite kept answering 429 for {waited:.0f} s")
                log.info("kite: 429 on order %s; retrying in %.2f s", cid, backoff)
                self._sleep(backoff)
                waited += backoff
                backoff = min(backoff * 2, 5.0)
                self.limiter.acquire()
            except kex.TokenException as exc:
                del self._records[cid]
                self._halt(f"Kite refused the session ({exc}): {LOGIN_AGAIN}")
                return self._reject(order, self.halted)
            except (kex.DataException, requests.RequestException) as exc:
                return self._unknown(rec, exc)
            except kex.KiteException as exc:
                if exc.code >= 500:
                    return self._unknown(rec, exc)
                del self._records[cid]
                return self._reject(order, f"Kite: {exc}")

    def _unknown(self, rec: _Record, exc: BaseException) -> OrderAck:
        """The placement may have reached Kite: look for the tag, never send again."""
        cid = rec.order.client_order_id
        log.warning("kite: outcome of order %s unknown (%s); looking it up by tag",
                    cid, type(exc).__name__)
        deadline = self._clock() + self.config.lookup_window_s
        while True:
            try:
                found = self._find(cid)
            except (kex.KiteException, requests.RequestException) as err:
                log.warning("kite: looking up %s failed: %s", cid, type(err).__name__)
                found = None
            if found is not None:
                del self._records[cid]
                self.placements += 1
                return OrderAck(order=self._adopt(rec.order, found).view())
            if self._clock() >= deadline:
                break
            self._sleep(0.5)
        del self._records[cid]
        return self._reject(rec.order, (
            f"outcome unknown ({type(exc).__name__}) and not in Kite's order book after "
            f"{self.config.lookup_window_s:g} s; not placed again"))

    def _read(self, fn: Callable[[], Any]) -> Any:
        """A read of Kite's book, waiting out 429s (reads are safe to repeat)."""
        delay = 0.25
        while True:
            try:
                return fn()
            except kex.NetworkException as exc:
                if exc.code != 429 or delay > 4.0:
                    raise
                self.throttled += 1
                self._sleep(delay)
                delay *= 2

    def _find(self, cid: str) -> dict[str, Any] | None:
        rows: list[dict[str, Any]] = self._read(self.client.orders)
        for row in rows:
            if row.get("tag") == cid:
                return row
        return None

    def _adopt(self, order: Order, row: dict[str, Any]) -> _Record:
        rec = _Record(order=order, broker_order_id=str(row["order_id"]))
        self._records[order.client_order_id] = rec
        self._dirty = True
        return rec

    def _reject(self, order: Order, reason: str) -> OrderAck:
        cid = order.client_order_id
        rejection = OrderRejected(
            event_id=stable_id("kite-reject", cid), exchange_ts=order.exchange_ts,
            client_order_id=cid, signal_id=order.signal_id, strategy=order.strategy,
            symbol=order.symbol, reason=reason)
        rec = _Record(order=order, status=BrokerOrderStatus.REJECTED, reason=reason,
                      rejection=rejection)
        self._records[cid] = rec
        return OrderAck(order=rec.view(), rejection=rejection)

    def lookup(self, client_order_id: str) -> BrokerOrder | None:
        rec = self._records.get(client_order_id)
        return rec.view() if rec is not None else None

    def order_book(self) -> list[BrokerOrder]:
        return [rec.view() for rec in self._records.values()]

    def on_tick(self, tick: Tick) -> list[Fill | OrderRejected]:
        return self.poll()

    def modify(self, client_order_id: str, *, quantity: int | None = None,
               limit_price: float | None = None) -> BrokerOrder:
        """Change an open order's quantity or limit price (Kite allows 25 changes)."""
        rec = self._open_record(client_order_id)
        self.client.modify_order(VARIETY, rec.broker_order_id, quantity=quantity,
                                 price=limit_price)
        self._dirty = True
        return rec.view()

    def cancel(self, client_order_id: str, reason: str = "") -> BrokerOrder | None:
        """Ask Kite to cancel an open order (``None`` if it is not open there); its final
        state (CANCELLED, with Kite's message) comes with the next poll. Kite has no field
        for ``reason``: it is logged."""
        rec = self._records.get(client_order_id)
        if rec is None or rec.status is not BrokerOrderStatus.OPEN or not rec.broker_order_id:
            return None
        log.info("cancelling %s at Kite (%s)", client_order_id, reason or "requested")
        self.client.cancel_order(VARIETY, rec.broker_order_id)
        self._dirty = True
        return rec.view()

    def _open_record(self, client_order_id: str) -> _Record:
        rec = self._records.get(client_order_id)
        if rec is None or rec.status is not BrokerOrderStatus.OPEN or not rec.broker_order_id:
            raise BrokerError(f"order {client_order_id} is not open at Kite")
        return rec

    def notify(self) -> None:
        """An order update arrived (a trigger to re-read the book soon, not a fact)."""
        self._dirty = True

    # ---- order book and trades --------------------------------------------------------

    def poll(self) -> list[Fill | OrderRejected]:
        """New fills and rejections from Kite's book (rate-bounded; [] when idle)."""
        now = self._clock()
        if now - self._last_reconcile >= self.config.reconcile_interval_s \
                and self._kite_book is not None and not self._session():
            try:
                self._reconcile()
            except kex.TokenException as exc:
                self._halt(f"Kite refused the session ({exc}): {LOGIN_AGAIN}")
            except (kex.KiteException, requests.RequestException) as exc:
                self._last_reconcile = now
                log.warning("kite: comparing positions failed (%s); trying again later",
                            type(exc).__name__)
        pending = [r for r in self._records.values()
                   if r.broker_order_id and r.status is BrokerOrderStatus.OPEN]
        if not pending:
            return []
        if now - self._last_poll < self.config.poll_interval_s and not self._dirty:
            return []
        if now - self._last_poll < min(0.25, self.config.poll_interval_s):
            return []
        self._last_poll = now
        self._dirty = False
        if self._session():
            return []
        try:
            orders = {str(o["order_id"]): o for o in self._read(self.client.orders)}
            trades = self._read(self.client.trades)
        except kex.TokenException as exc:
            self._halt(f"Kite refused the session ({exc}): {LOGIN_AGAIN}")
            return []
        except (kex.KiteException, requests.RequestException) as exc:
            log.warning("kite: reading the order book failed (%s); trying again",
                        type(exc).__name__)
            return []
        by_order: dict[str, list[dict[str, Any]]] = {}
        for t in trades:
            by_order.setdefault(str(t["order_id"]), []).append(t)
        out: list[Fill | OrderRejected] = []
        for rec in pending:
            out += self._apply(rec, orders.get(rec.broker_order_id),
                               by_order.get(rec.broker_order_id, []))
        return out

    def _apply(self, rec: _Record, row: dict[str, Any] | None,
               trades: list[dict[str, Any]]) -> list[Fill | OrderRejected]:
        out: list[Fill | OrderRejected] = []
        order = rec.order
        for t in sorted(trades, key=lambda t: str(t["trade_id"])):
            trade_id = str(t["trade_id"])
            if trade_id in rec.trades:
                continue
            qty = int(t["quantity"])
            price = to_decimal(float(t["average_price"]))
            prior = Decimal(rec.turnover)
            charges = self._calc.for_fill(order.side, qty, price, prior_turnover=prior)
            rec.trades.append(trade_id)
            rec.filled_quantity += qty
            rec.turnover = str(prior + turnover_of(qty, price))
            out.append(Fill(
                event_id=stable_id("kite-fill", rec.broker_order_id, trade_id),
                exchange_ts=_epoch_ns(t.get("fill_timestamp") or t.get("exchange_timestamp")),
                ingest_ts=now_ns(), trade_id=trade_id, client_order_id=order.client_order_id,
                strategy=order.strategy, symbol=order.symbol, side=order.side, quantity=qty,
                price=float(price), charges=charges, signal_exchange_ts=order.exchange_ts,
                product=order.product))
        if row is None:
            return out
        status = _TERMINAL.get(str(row.get("status")))
        if status is BrokerOrderStatus.COMPLETE and rec.filled_quantity < order.quantity:
            self._dirty = True  # trades not visible yet: read again
            return out
        if status is not None:
            rec.status = status
            rec.reason = str(row.get("status_message") or "")
        if status is BrokerOrderStatus.REJECTED:
            rec.rejection = OrderRejected(
                event_id=stable_id("kite-reject", order.client_order_id),
                exchange_ts=order.exchange_ts, client_order_id=order.client_order_id,
                signal_id=order.signal_id, strategy=order.strategy, symbol=order.symbol,
                reason=f"Kite: {rec.reason or 'rejected'}")
            out.append(rec.rejection)
        return out

    # ---- reconciliation ---------------------------------------------------------------

    def _reconcile_if_needed(self) -> str:
        if self._kite_book is not None:
            return ""
        try:
            self._reconcile()
        except kex.TokenException as exc:
            self._halt(f"Kite refused the session ({exc}): {LOGIN_AGAIN}")
            return self.halted
        except (kex.KiteException, requests.RequestException) as exc:
            return f"cannot reconcile with Kite's order book before placing ({exc})"
        return ""

    def _reconcile(self) -> None:
        """Read Kite's orders and positions: index our tags, compare positions. A fill
        between the two reads looks like a difference, so a symbol is only halted when a
        second pair of reads shows the same difference."""
        book, diffs = self._differences()
        if diffs:
            self._sleep(0.5)
            book, again = self._differences()
            diffs = {s: d for s, d in again.items() if diffs.get(s) == d}
        self._last_reconcile = self._clock()
        self._kite_book = book
        for cid, rec in self._records.items():
            row = book.get(cid)
            if row is not None and not rec.broker_order_id:
                rec.broker_order_id = str(row["order_id"])
        if any(r.status is BrokerOrderStatus.OPEN and r.broker_order_id
               for r in self._records.values()):
            self._dirty = True
        halts = {symbol: (f"Kite's day position in {symbol} is {have} but AlphasPT's "
                          f"orders account for {want}: new orders halted until they agree")
                 for symbol, (want, have) in diffs.items()}
        for symbol, reason in halts.items():
            if self.symbol_halts.get(symbol) != reason:
                log.error("kite: %s", reason)
        for symbol in set(self.symbol_halts) - set(halts):
            log.warning("kite: position in %s agrees again; orders resume", symbol)
        self.symbol_halts = halts

    def _differences(self) -> tuple[dict[str, dict[str, Any]],
                                    dict[str, tuple[int, int]]]:
        """Kite's orders by our tags, and per symbol (expected, actual) day quantities
        where they differ."""
        orders = self._read(self.client.orders)
        positions = self._read(self.client.positions)
        book = {str(o["tag"]): o for o in orders if is_client_order_id(o.get("tag"))}
        expected: dict[str, int] = {}
        for row in book.values():
            sign = 1 if row.get("transaction_type") == "BUY" else -1
            symbol = str(row["tradingsymbol"])
            expected[symbol] = expected.get(symbol, 0) + sign * int(row.get("filled_quantity")
                                                                    or 0)
        actual: dict[str, int] = {}
        for row in positions.get("day", []):
            symbol = str(row["tradingsymbol"])
            qty = int(row.get("day_buy_quantity") or 0) - int(row.get("day_sell_quantity") or 0)
            actual[symbol] = actual.get(symbol, 0) + qty
        diffs = {}
        for symbol in sorted(set(expected) | set(actual)):
            want, have = expected.get(symbol, 0), actual.get(symbol, 0)
            if want != have:
                diffs[symbol] = (want, have)
        return book, diffs

    # ---- per-key state (the trading engine's changelog) -----------------------------

    def export(self, client_order_id: str) -> bytes | None:
        rec = self._records.get(client_order_id)
        return None if rec is None else _ENC.encode(rec)

    def load(self, data: bytes) -> str:
        rec = _DEC.decode(data)
        self._records[rec.order.client_order_id] = rec
        self._kite_book = None  # reconcile again before the next placement
        return rec.order.client_order_id

    def reset(self) -> None:
        """Forget everything (a task was dropped); Kite's book is read again."""
        self._records.clear()
        self._kite_book = None
        self.symbol_halts.clear()

    def forget_finished(self, before_ts: int,
                        owns: Callable[[str], bool] | None = None) -> list[str]:
        gone = [cid for cid, r in self._records.items()
                if r.status is not BrokerOrderStatus.OPEN and r.order.exchange_ts < before_ts
                and (owns is None or owns(r.order.symbol))]
        for cid in gone:
            del self._records[cid]
        return gone


def _epoch_ns(value: object) -> int:
    """Kite's timestamps are naive IST (kiteconnect parses 19-char strings)."""
    if isinstance(value, datetime):
        stamp = value.replace(tzinfo=IST) if value.tzinfo is None else value
        return int(stamp.timestamp() * 1e9)
    if isinstance(value, str) and len(value) == 19:
        return _epoch_ns(datetime.fromisoformat(value))
    return now_ns()

