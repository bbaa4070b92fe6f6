"""The simulator's state: sessions, the order book, trades, positions, margins, a market.

Faithful to Kite Connect v3 as described in ``/work/shared/kite-protocol.md`` (§1 session
and checksum, §3 orders and trades, §3.4 rate limits, §6 positions/margins). Everything is
guarded by one lock: the aiohttp handlers (event-loop thread) and tests or the ticker
(other threads) call in concurrently.

Matching: every symbol has a last price (pushed with :meth:`Book.set_price`, else a
deterministic one derived from the symbol). A MARKET order executes against it at once,
a LIMIT order when the price crosses it; each match executes at most ``liquidity`` shares
of an order (per symbol, default unlimited), so a test gets partial fills by setting a
liquidity and pushing prices. Market protection turns a MARKET order into a capped LIMIT
with the system tags ``mktp``/``mktp:<pct>`` as Kite does.

Bounds: orders and trades of one simulated day (cleared by :meth:`Book.new_day`), at most
``max_orders`` (5,000, Kite's daily cap) orders; request-time windows hold at most the
limit they enforce.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from alphaspt.kite_sim.instruments import mint_token

IST: Final = timezone(timedelta(hours=5, minutes=30))
VARIETIES: Final = frozenset({"regular", "amo", "co", "iceberg", "auction"})
ORDER_TYPES: Final = frozenset({"MARKET", "LIMIT", "SL", "SL-M"})
PRODUCTS: Final = frozenset({"CNC", "NRML", "MIS", "MTF"})
EXCHANGES: Final = frozenset({"NSE", "BSE", "NFO", "CDS", "BCD", "MCX", "BFO"})
AUTO_PROTECTION_PCT: Final = 2.0
"""What ``market_protection=-1`` (automatic) caps a market order at, in percent."""
FREEZE_QUANTITY: Final = 100_000
"""Orders above this many shares are refused before the OMS (never in the book)."""
MAX_MODIFICATIONS: Final = 25


class SimError(Exception):
    """A Kite error answer: HTTP status, ``error_type`` and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def ist_now(ts: float) -> str:
    return datetime.fromtimestamp(ts, IST).strftime("%Y-%m-%d %H:%M:%S")


class Window:
    """At most ``limit`` events in any ``seconds`` (a sliding log of at most ``limit``)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.times: deque[float] = deque(maxlen=limit)

    def admit(self, now: float) -> bool:
        if len(self.times) == self.limit and now - self.times[0] < self.seconds:
            return False
        self.times.append(now)
        return True


@dataclass
class Limits:
    orders_per_second: int = 10
    orders_per_minute: int = 400
    orders_per_day: int = 5000
    other_per_second: int = 10


@dataclass
class _Order:
    data: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    modifications: int = 0
    user_price: float | None = None

    def record(self, status: str, ts: float, message: str | None = None) -> None:
        self.data["status"] = status
        if message is not None:
            self.data["status_message"] = message
        self.data["exchange_update_timestamp"] = ist_now(ts)
        self.history.append(dict(self.data))


class Book:
    def __init__(self, api_key: str, api_secret: str, *, user_id: str = "AB1234",
                 limits: Limits | None = None, cash: float = 10_000_000.0,
                 clock: Callable[[], float] = time.time, max_orders: int = 5000,
                 request_token_ttl: float = 300.0) -> None:
        self.api_key = api_key
        self._secret = api_secret
        self.user_id = user_id
        self.limits = limits or Limits()
        self.cash = cash
        self.clock = clock
        self.max_orders = max_orders
        self.request_token_ttl = request_token_ttl
        self.lock = threading.RLock()
        self._request_tokens: dict[str, float] = {}
        self._access_tokens: set[str] = set()
        self.orders: dict[str, _Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.prices: dict[str, float] = {}
        self.liquidity: dict[str, int] = {}
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every order update ``{"type": "order", "data": ...}`` (the ticker
        pushes them to its connections). Fire and forget: exceptions are swallowed."""
        self.placed_at: deque[float] = deque(maxlen=max_orders)
        """Arrival time of every accepted placement (for rate assertions)."""
        self.throttled = 0
        """Order placements answered with 429."""
        self.throttled_other = 0
        """Other requests answered with 429."""
        self._order_windows = self._new_order_windows()
        self._other = Window(self.limits.other_per_second, 1.0)
        self._seq = 0

    def _new_order_windows(self) -> list[Window]:
        lim = self.limits
        return [Window(lim.orders_per_second, 1.0), Window(lim.orders_per_minute, 60.0),
                Window(lim.orders_per_day, 86_400.0)]

    def set_limits(self, limits: Limits) -> None:
        with self.lock:
            self.limits = limits
            self._order_windows = self._new_order_windows()
            self._other = Window(limits.other_per_second, 1.0)

    # ---- session ------------------------------------------------------------------

    def issue_request_token(self) -> str:
        """What a successful login at Kite hands to the redirect URL (one-time)."""
        with self.lock:
            token = secrets.token_hex(16)
            self._request_tokens[token] = self.clock() + self.request_token_ttl
            if len(self._request_tokens) > 100:
                now = self.clock()
                self._request_tokens = {t: e for t, e in self._request_tokens.items() if e > now}
            return token

    def create_session(self, api_key: str, request_token: str, checksum: str) -> dict[str, Any]:
        with self.lock:
            expires = self._request_tokens.pop(request_token, None)
            if api_key != self.api_key:
                raise SimError(403, "TokenException", "Invalid `api_key`.")
            if expires is None or expires < self.clock():
                raise SimError(403, "TokenException", "Token is invalid or has expired.")
            want = hashlib.sha256((api_key + request_token + self._secret).encode()).hexdigest()
            if not secrets.compare_digest(want, checksum):
                raise SimError(403, "TokenException", "Invalid checksum.")
            access = secrets.token_hex(16)
            self._access_tokens.add(access)
            if len(self._access_tokens) > 100:
                self._access_tokens = {access}
            return {
                "user_type": "individual", "email": "sim@example.com",
                "user_name": "Kite Simulator", "user_shortname": "Sim",
                "broker": "ZERODHA", "exchanges": sorted(EXCHANGES),
                "products": sorted(PRODUCTS), "order_types": sorted(ORDER_TYPES),
                "avatar_url": None, "user_id": self.user_id, "api_key": api_key,
                "access_token": access, "public_token": secrets.token_hex(16),
                "enctoken": "", "refresh_token": "", "silo": "", "meta": {"demat_consent": ""},
                "login_time": ist_now(self.clock()),
            }

    def invalidate(self, access_token: str) -> None:
        with self.lock:
            self._access_tokens.discard(access_token)

    def expire_sessions(self) -> None:
        """What 06:00 IST (or a master logout) does: every access token stops working."""
        with self.lock:
            self._access_tokens.clear()

    def authorize(self, header: str | None) -> None:
        prefix = "token "
        if header is None or not header.startswith(prefix):
            raise SimError(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        key, _, token = header[len(prefix):].partition(":")
        with self.lock:
            if key != self.api_key or token not in self._access_tokens:
                raise SimError(403, "TokenException", "Incorrect `api_key` or `access_token`.")

    def throttle(self, orders: bool) -> None:
        with self.lock:
            now = self.clock()
            if orders:
                ok = all(w.admit(now) for w in self._order_windows)
            else:
                ok = self._other.admit(now)
            if not ok:
                if orders:
                    self.throttled += 1
                else:
                    self.throttled_other += 1
                raise SimError(429, "NetworkException", "Too many requests")

    # ---- market -------------------------------------------------------------------

    def price(self, symbol: str) -> float:
        with self.lock:
            if symbol not in self.prices:
                digest = hashlib.sha256(symbol.encode()).digest()
                self.prices[symbol] = 100.0 + int.from_bytes(digest[:2], "big") % 900
            return self.prices[symbol]

    def set_price(self, symbol: str, price: float) -> None:
        """A new last traded price: open orders of ``symbol`` that it crosses execute."""
        with self.lock:
            self.prices[symbol] = price
            for order in list(self.orders.values()):
                if order.data["tradingsymbol"] == symbol and order.data["status"] == "OPEN":
                    self._match(order)

    # ---- orders -------------------------------------------------------------------

    def place(self, variety: str, form: dict[str, str]) -> str:
        with self.lock:
            if variety not in VARIETIES:
                raise SimError(400, "InputException", f"Invalid variety: {variety}")
            symbol = form.get("tradingsymbol", "")
            exchange = form.get("exchange", "")
            side = form.get("transaction_type", "")
            order_type = form.get("order_type", "")
            product = form.get("product", "")
            if not symbol or exchange not in EXCHANGES:
                raise SimError(400, "InputException", "Invalid `tradingsymbol` or `exchange`.")
            if side not in ("BUY", "SELL"):
                raise SimError(400, "InputException", "Invalid `transaction_type`.")
            if order_type not in ORDER_TYPES:
                raise SimError(400, "InputException", "Invalid `order_type`.")
            if product not in PRODUCTS:
                raise SimError(400, "InputException", "Invalid `product`.")
            quantity = _int(form.get("quantity"), "quantity")
            if quantity <= 0:
                raise SimError(400, "InputException", "Invalid `quantity`.")
            if quantity > FREEZE_QUANTITY:
                raise SimError(400, "InputException",
                               f"Quantity exceeds the freeze limit of {FREEZE_QUANTITY}.")
            tag = form.get("tag")
            if tag is not None and not (tag.isascii() and tag.isalnum() and len(tag) <= 20):
                raise SimError(400, "InputException", "Invalid `tag`: alphanumeric, max 20.")
            protection = _protection(form.get("market_protection"))
            if order_type in ("MARKET", "SL-M") and protection == 0:
                raise SimError(400, "InputException",
                               "Market orders without market protection are not allowed via "
                               "API. Please set market protection or use a Limit order.")
            price = _float(form.get("price"), "price") if form.get("price") else 0.0
            trigger = _float(form.get("trigger_price"), "trigger_price") \
                if form.get("trigger_price") else 0.0
            if order_type in ("LIMIT", "SL") and price <= 0:
                raise SimError(400, "InputException", "Invalid `price`.")
            if order_type in ("SL", "SL-M") and trigger <= 0:
                raise SimError(400, "InputException", "Invalid `trigger_price`.")
            if len(self.orders) >= self.max_orders:
                raise SimError(400, "OrderException", "Daily order limit reached.")
            now = self.clock()
            self.placed_at.append(now)
            self._seq += 1
            order_id = f"{int(now):010d}{self._seq:09d}"
            tags = [] if tag is None else [tag]
            shown_type = order_type
            ltp = self.price(symbol)
            if order_type == "MARKET":
                pct = AUTO_PROTECTION_PCT if protection < 0 else protection
                cap = ltp * (1 + pct / 100) if side == "BUY" else ltp * (1 - pct / 100)
                price = round(round(cap / 0.05) * 0.05, 2)
                shown_type = "LIMIT"
                tags += ["mktp", f"mktp:{pct:.2f}"]
            order = _Order({
                "account_id": self.user_id, "placed_by": self.user_id,
                "order_id": order_id, "exchange_order_id": None, "parent_order_id": None,
                "status": "", "status_message": None, "status_message_raw": None,
                "order_timestamp": ist_now(now), "exchange_update_timestamp": None,
                "exchange_timestamp": None, "variety": variety, "modified": False,
                "exchange": exchange, "tradingsymbol": symbol,
                "instrument_token": instrument_token(symbol),
                "order_type": shown_type, "transaction_type": side,
                "validity": form.get("validity", "DAY"), "validity_ttl": 0,
                "product": product, "quantity": quantity,
                "disclosed_quantity": _int(form.get("disclosed_quantity") or "0", "dq"),
                "price": price, "trigger_price": trigger, "average_price": 0,
                "filled_quantity": 0, "pending_quantity": quantity, "cancelled_quantity": 0,
                "market_protection": protection, "meta": {}, "tag": tag, "tags": tags,
                "guid": secrets.token_hex(8),
            })
            self.orders[order_id] = order
            for status in ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING"):
                order.record(status, now)
            value = quantity * (price or ltp)
            if side == "BUY" and product != "CNC" and value > self.cash:
                order.record("REJECTED", now,
                             "Insufficient funds. Required margin is "
                             f"{value:.2f} but available margin is {self.cash:.2f}.")
                order.data["status_message_raw"] = \
                    f"RMS:Margin Exceeds,Required:{value:.2f}, Available:{self.cash:.2f}"
                order.data["pending_quantity"] = 0
                self._notify(order)
                return order_id
            order.data["exchange_order_id"] = f"13{self._seq:014d}"
            order.data["exchange_timestamp"] = ist_now(now)
            order.record("OPEN", now)
            self._notify(order)
            self._match(order)
            return order_id

    def modify(self, variety: str, order_id: str, form: dict[str, str]) -> str:
        with self.lock:
            order = self._get(order_id)
            if order.data["status"] != "OPEN":
                raise SimError(400, "OrderException",
                               f"Order cannot be modified as it is {order.data['status']}.")
            if order.modifications >= MAX_MODIFICATIONS:
                raise SimError(400, "OrderException",
                               "Maximum allowed order modifications exceeded.")
            now = self.clock()
            for status in ("MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED"):
                order.record(status, now)
            if form.get("quantity"):
                qty = _int(form["quantity"], "quantity")
                if qty < order.data["filled_quantity"] or qty <= 0:
                    raise SimError(400, "InputException", "Invalid `quantity`.")
                order.data["quantity"] = qty
                order.data["pending_quantity"] = qty - order.data["filled_quantity"]
            if form.get("price"):
                order.data["price"] = _float(form["price"], "price")
            if form.get("order_type") in ORDER_TYPES:
                order.data["order_type"] = form["order_type"]
            order.modifications += 1
            order.data["modified"] = True
            order.record("OPEN", now)
            self._notify(order)
            self._match(order)
            return order_id

    def cancel(self, variety: str, order_id: str) -> str:
        with self.lock:
            order = self._get(order_id)
            if order.data["status"] != "OPEN":
                raise SimError(400, "OrderException",
                               f"Order cannot be cancelled as it is {order.data['status']}.")
            now = self.clock()
            order.record("CANCEL PENDING", now)
            order.data["cancelled_quantity"] = order.data["pending_quantity"]
            order.data["pending_quantity"] = 0
            order.record("CANCELLED", now, "Cancelled by user")
            self._notify(order)
            return order_id

    def _get(self, order_id: str) -> _Order:
        order = self.orders.get(order_id)
        if order is None:
            raise SimError(400, "InputException", "Invalid `order_id`.")
        return order

    def _match(self, order: _Order) -> None:
        d = order.data
        ltp = self.price(d["tradingsymbol"])
        limit = d["price"]
        crosses = ltp <= limit if d["transaction_type"] == "BUY" else ltp >= limit
        if d["order_type"] in ("LIMIT",) and not crosses:
            return
        if d["order_type"] in ("SL", "SL-M"):
            return  # stop orders wait in TRIGGER PENDING; not simulated further
        quantity = min(d["pending_quantity"], self.liquidity.get(d["tradingsymbol"],
                                                                  d["pending_quantity"]))
        if quantity <= 0:
            return
        now = self.clock()
        filled = d["filled_quantity"]
        d["average_price"] = round((d["average_price"] * filled + ltp * quantity)
                                   / (filled + quantity), 4)
        d["filled_quantity"] = filled + quantity
        d["pending_quantity"] -= quantity
        self._seq += 1
        self.trades.append({
            "trade_id": f"{self._seq:08d}", "order_id": d["order_id"],
            "exchange": d["exchange"], "tradingsymbol": d["tradingsymbol"],
            "instrument_token": d["instrument_token"], "product": d["product"],
            "average_price": ltp, "quantity": quantity,
            "exchange_order_id": d["exchange_order_id"],
            "transaction_type": d["transaction_type"], "fill_timestamp": ist_now(now),
            "order_timestamp": ist_now(now)[11:], "exchange_timestamp": ist_now(now),
        })
        if d["pending_quantity"] == 0:
            order.record("COMPLETE", now)
        else:
            order.record("UPDATE", now)
            d["status"] = "OPEN"
        self._notify(order)

    def _notify(self, order: _Order) -> None:
        message = {"type": "order", "data": {
            **order.data, "user_id": self.user_id,
            "unfilled_quantity": order.data["pending_quantity"], "app_id": 1,
            "checksum": hashlib.sha256((order.data["order_id"] + order.data["order_timestamp"]
                                        + self._secret).encode()).hexdigest(),
        }}
        for listener in list(self.listeners):
            try:
                listener(message)
            except Exception:  # noqa: S112 - fire and forget, like Kite's order updates
                continue

    # ---- reads --------------------------------------------------------------------

    def order_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(o.data) for o in self.orders.values()]

    def order_history(self, order_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(h) for h in self._get(order_id).history]

    def trade_list(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in self.trades if order_id is None or t["order_id"] == order_id]

    def positions(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            rows: dict[tuple[str, str, str], dict[str, Any]] = {}
            for t in self.trades:
                key = (t["exchange"], t["tradingsymbol"], t["product"])
                row = rows.setdefault(key, _position_row(*key))
                side = "buy" if t["transaction_type"] == "BUY" else "sell"
                row[f"{side}_quantity"] += t["quantity"]
                row[f"{side}_value"] += t["quantity"] * t["average_price"]
            out = []
            for (_, symbol, _), row in rows.items():
                ltp = self.price(symbol)
                for side in ("buy", "sell"):
                    q = row[f"{side}_quantity"]
                    row[f"{side}_price"] = row[f"{side}_value"] / q if q else 0
                    row[f"day_{side}_quantity"] = q
                    row[f"day_{side}_value"] = row[f"{side}_value"]
                    row[f"day_{side}_price"] = row[f"{side}_price"]
                row["quantity"] = row["buy_quantity"] - row["sell_quantity"]
                row["last_price"] = ltp
                row["value"] = row["sell_value"] - row["buy_value"]
                row["pnl"] = row["m2m"] = row["value"] + row["quantity"] * ltp
                row["average_price"] = row["buy_price"] if row["quantity"] > 0 \
                    else row["sell_price"]
                out.append(row)
            return {"net": out, "day": [dict(r) for r in out]}

    def margins(self) -> dict[str, Any]:
        with self.lock:
            used = sum(t["quantity"] * t["average_price"] for t in self.trades
                       if t["transaction_type"] == "BUY")
            segment = {
                "enabled": True, "net": self.cash - used,
                "available": {"adhoc_margin": 0, "cash": self.cash, "opening_balance": self.cash,
                              "live_balance": self.cash - used, "collateral": 0,
                              "intraday_payin": 0},
                "utilised": {k: 0 for k in (
                    "debits", "exposure", "m2m_realised", "m2m_unrealised", "option_premium",
                    "payout", "span", "holding_sales", "turnover", "liquid_collateral",
                    "stock_collateral", "delivery")},
            }
            segment["utilised"]["debits"] = used
            return {"equity": segment, "commodity": {**segment, "net": 0}}

    def new_day(self) -> None:
        """Kite's order book lives a day: a new day starts empty (sessions expire)."""
        with self.lock:
            self.orders.clear()
            self.trades.clear()
            self.placed_at.clear()
            self._access_tokens.clear()


def instrument_token(symbol: str) -> int:
    """The NSE token of ``symbol``: the instruments dump's rule (one formula for both)."""
    return mint_token(symbol)


def _position_row(exchange: str, symbol: str, product: str) -> dict[str, Any]:
    row: dict[str, Any] = {"tradingsymbol": symbol, "exchange": exchange,
                           "instrument_token": instrument_token(symbol), "product": product,
                           "overnight_quantity": 0, "multiplier": 1, "close_price": 0,
                           "unrealised": 0, "realised": 0, "buy_m2m": 0, "sell_m2m": 0}
    for side in ("buy", "sell"):
        row[f"{side}_quantity"] = 0
        row[f"{side}_value"] = 0.0
    return row


def _int(value: str | None, name: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise SimError(400, "InputException", f"Invalid `{name}`.") from None


def _float(value: str | None, name: str) -> float:
    try:
        return float(value or "")
    except ValueError:
        raise SimError(400, "InputException", f"Invalid `{name}`.") from None


def _protection(value: str | None) -> float:
    if value is None or value == "":
        return 0.0
    try:
        pct = float(value)
    except ValueError:
        raise SimError(400, "InputException",
                       f"Invalid request (failed to decode market_protection, got: {value} "
                       "(expected decimal))") from None
    if pct != -1 and not 0 <= pct <= 100:
        raise SimError(400, "InputException", "Invalid `market_protection`.")
    return pct
