"""The Kite broker through the real kiteconnect client against the simulator (no mocks)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta

import pytest

from alphaspt.brokers.base import BrokerOrderStatus, OrderAck, client_order_id
from alphaspt.brokers.kite import AccountLimiter, FileTokenStore, KiteBroker
from alphaspt.brokers.kite.tokens import IST
from alphaspt.core.config import KiteConfig
from alphaspt.core.events import Fill, Order, OrderRejected, OrderType, Product, Side
from alphaspt.kite_sim import Limits
from tests.integration.kite.conftest import KiteSim


def order(symbol: str = "INFY", *, quantity: int = 10, side: Side = Side.BUY,
          order_type: OrderType = OrderType.MARKET, limit: float | None = None,
          product: Product = Product.MIS, strategy: str = "s1") -> Order:
    signal = uuid.uuid4().hex
    coid = client_order_id(signal)
    return Order(event_id=coid, exchange_ts=time.time_ns(), client_order_id=coid,
                 signal_id=signal, strategy=strategy, symbol=symbol, side=side,
                 quantity=quantity, order_type=order_type, limit_price=limit, mode="Live",
                 product=product)


def broker(sim: KiteSim, config: KiteConfig | None = None,
           limiter: AccountLimiter | None = None) -> KiteBroker:
    cfg = config or sim.config
    return KiteBroker(cfg, FileTokenStore(sim.token_file), limiter or AccountLimiter())


def drain(b: KiteBroker, want: int, timeout: float = 10.0) -> list[Fill | OrderRejected]:
    out: list[Fill | OrderRejected] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        out += b.poll()
        time.sleep(0.05)
    return out


def test_every_order_carries_tag_protection_product_and_variety(kite_sim: KiteSim) -> None:
    kite_sim.login()
    b = broker(kite_sim)
    market = order("INFY")
    limit_price = kite_sim.book.price("TCS") + 5
    limit = order("TCS", order_type=OrderType.LIMIT, limit=limit_price, product=Product.CNC)
    for o in (market, limit):
        ack = b.place(o)
        assert ack.rejection is None and not ack.duplicate
    (m,) = kite_sim.tagged(market.client_order_id)
    (lim,) = kite_sim.tagged(limit.client_order_id)
    assert m["variety"] == lim["variety"] == "regular"
    assert m["market_protection"] == -1 and "mktp" in m["tags"]  # type: ignore[operator]
    assert m["product"] == "MIS" and lim["product"] == "CNC"
    assert lim["market_protection"] == 0 and lim["price"] == limit_price
    fills = drain(b, 2)
    assert {f.client_order_id for f in fills} == {market.client_order_id,
                                                  limit.client_order_id}
    trade_ids = {t["trade_id"] for t in kite_sim.book.trade_list()}
    assert {f.trade_id for f in fills if isinstance(f, Fill)} == trade_ids
    assert b.lookup(market.client_order_id).status is BrokerOrderStatus.COMPLETE  # type: ignore[union-attr]
    # a repeated client id is never a second order
    assert b.place(market).duplicate
    assert len(kite_sim.tagged(market.client_order_id)) == 1


def test_accept_then_timeout_gives_exactly_one_order(kite_sim: KiteSim) -> None:
    kite_sim.login()
    b = broker(kite_sim)
    o = order()
    kite_sim.faults.accept_then_timeout(delay_s=kite_sim.config.timeout_s + 2)
    ack = b.place(o)
    assert ack.rejection is None, ack.rejection
    assert ack.order.broker_order_id == kite_sim.tagged(o.client_order_id)[0]["order_id"]
    # the engine died before recording it: a new broker (restart) finds it by tag
    again = broker(kite_sim).place(o)
    assert again.duplicate and again.recovered
    assert len(kite_sim.tagged(o.client_order_id)) == 1
    assert len(kite_sim.book.order_list()) == 1


def test_a_5xx_before_kite_took_the_order_is_not_sent_again(kite_sim: KiteSim) -> None:
    kite_sim.login()
    b = broker(kite_sim)
    b.place(order("WIPRO"))  # reconciled; the next placement fails with a 503
    o = order("INFY")
    kite_sim.faults.fail_next("/orders/regular", status=503)
    ack = b.place(o)
    assert ack.rejection is not None
    assert "outcome unknown" in ack.rejection.reason and "not placed again" in ack.rejection.reason
    assert kite_sim.tagged(o.client_order_id) == []
    gateway = order("INFY")  # an HTML gateway page: kiteconnect's DataException
    kite_sim.faults.html_next("/orders/regular")
    ack = b.place(gateway)
    assert ack.rejection is not None and "DataException" in ack.rejection.reason
    assert kite_sim.tagged(gateway.client_order_id) == []


def test_partial_fills_accumulate(kite_sim: KiteSim) -> None:
    kite_sim.login()
    b = broker(kite_sim)
    price = kite_sim.book.price("SBIN")
    kite_sim.book.liquidity["SBIN"] = 30
    o = order("SBIN", quantity=100, order_type=OrderType.LIMIT, limit=price)
    b.place(o)
    fills = [f for f in drain(b, 1) if isinstance(f, Fill)]
    for step in (0.5, 0.0, 1.0, 0.0):
        kite_sim.book.set_price("SBIN", price - step)
        fills += [f for f in drain(b, 1) if isinstance(f, Fill)]
    assert [f.quantity for f in fills] == [30, 30, 30, 10]
    assert len({f.trade_id for f in fills}) == 4
    view = b.lookup(o.client_order_id)
    assert view is not None and view.status is BrokerOrderStatus.COMPLETE
    assert view.filled_quantity == 100
    (row,) = kite_sim.tagged(o.client_order_id)
    assert view.average_price == pytest.approx(row["average_price"])
    assert b.poll() == []  # nothing twice


def test_margin_and_input_errors_are_rejections_with_kites_reason(kite_sim: KiteSim) -> None:
    kite_sim.login()
    b = broker(kite_sim)
    big = order("INFY", quantity=99_000)  # more than the simulated cash
    assert b.place(big).rejection is None
    (rej,) = drain(b, 1)
    assert isinstance(rej, OrderRejected) and "Insufficient funds" in rej.reason
    frozen = order("INFY", quantity=200_000)  # refused before the OMS: a 400
    ack = b.place(frozen)
    assert ack.rejection is not None and "freeze" in ack.rejection.reason
    assert kite_sim.tagged(frozen.client_order_id) == []


def test_token_expiry_halts_orders_and_says_so(kite_sim: KiteSim) -> None:
    kite_sim.login()
    b = broker(kite_sim)
    assert b.place(order()).rejection is None
    kite_sim.book.expire_sessions()  # 06:00 IST at Kite (or a logout elsewhere)
    first = b.place(order())
    assert first.rejection is not None and "log in again" in first.rejection.reason
    before = len(kite_sim.book.order_list())
    second = b.place(order())
    assert second.rejection is not None and "log in again" in second.rejection.reason
    assert len(kite_sim.book.order_list()) == before
    kite_sim.login()  # the daily login stores a new token: orders resume
    assert b.place(order()).rejection is None
    # a stored token past its 06:00 IST expiry halts without asking Kite
    FileTokenStore(kite_sim.token_file).write("stale", datetime.now(IST) - timedelta(days=1))
    late = b.place(order())
    assert late.rejection is not None and "expired at 06:00 IST" in late.rejection.reason


def test_position_difference_halts_that_symbol_until_resolved(kite_sim: KiteSim) -> None:
    session = kite_sim.login()
    from kiteconnect import KiteConnect
    manual = KiteConnect(kite_sim.config.api_key, root=kite_sim.config.api_root)
    manual.set_access_token(session.access_token)
    manual.place_order("regular", "NSE", "HDFCBANK", "BUY", 5, "MIS", "MARKET",
                       market_protection=-1)  # placed by hand, not by AlphasPT
    b = broker(kite_sim, kite_sim.config.model_copy(update={"reconcile_interval_s": 0.5}))
    halted = b.place(order("HDFCBANK"))
    assert halted.rejection is not None and "HDFCBANK" in halted.rejection.reason
    assert "is 5 but AlphasPT's orders account for 0" in halted.rejection.reason
    assert "HDFCBANK" in b.alert
    assert b.place(order("INFY")).rejection is None  # other symbols trade on
    manual.place_order("regular", "NSE", "HDFCBANK", "SELL", 5, "MIS", "MARKET",
                       market_protection=-1)  # resolved by hand
    time.sleep(0.6)
    b.poll()
    assert b.alert == ""
    assert b.place(order("HDFCBANK")).rejection is None


def test_burst_across_two_strategies_respects_the_account_limit(kite_sim: KiteSim) -> None:
    kite_sim.login()
    limiter = AccountLimiter()  # one account: both strategies share it
    brokers = [broker(kite_sim, limiter=limiter), broker(kite_sim, limiter=limiter)]
    orders = [[order(f"SYM{i % 7}", strategy=f"s{k}") for i in range(50)] for k in (0, 1)]
    acks: list[OrderAck] = []

    def run(k: int) -> None:
        acks.extend(brokers[k].place(o) for o in orders[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(acks) == 100 and all(a.rejection is None for a in acks)
    times = sorted(kite_sim.book.placed_at)
    assert len(times) == 100
    assert max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times)) <= 10
    assert limiter.waited_s > 8.0  # the account's limiter paced them (100 at 10/s)
    tags = [o["tag"] for o in kite_sim.book.order_list()]
    assert sorted(tags) == sorted(o.client_order_id for os in orders for o in os)


def test_429s_slow_orders_down_without_losing_one(kite_sim: KiteSim) -> None:
    kite_sim.login()
    kite_sim.book.set_limits(Limits(orders_per_second=4))  # tighter than our 10/s
    b = broker(kite_sim)
    orders = [order(f"SYM{i % 3}") for i in range(24)]
    acks = [b.place(o) for o in orders]
    assert all(a.rejection is None for a in acks)
    assert kite_sim.book.throttled > 0 and b.throttled == kite_sim.book.throttled
    tags = sorted(str(o["tag"]) for o in kite_sim.book.order_list())
    assert tags == sorted(o.client_order_id for o in orders)


def test_no_secret_or_token_in_logs(kite_sim: KiteSim, caplog: pytest.LogCaptureFixture
                                    ) -> None:
    caplog.set_level(logging.DEBUG)
    session = kite_sim.login()
    b = broker(kite_sim)
    b.place(order())
    kite_sim.faults.accept_then_timeout(delay_s=kite_sim.config.timeout_s + 1)
    b.place(order())
    kite_sim.book.expire_sessions()
    b.place(order())
    drain(b, 1, timeout=1)
    text = caplog.text
    assert "kite" in text  # the broker did log
    for secret in (kite_sim.api_secret, session.access_token):
        assert secret not in text
    assert "request_token=" not in text


def test_modify_and_cancel_reach_kite_and_the_book_says_what_happened(kite_sim: KiteSim
                                                                      ) -> None:
    kite_sim.login()
    b = broker(kite_sim)
    price = kite_sim.book.price("ITC")
    resting = order("ITC", order_type=OrderType.LIMIT, limit=round(price - 20, 2))
    doomed = order("ITC", order_type=OrderType.LIMIT, limit=round(price - 30, 2))
    b.place(resting)
    b.place(doomed)
    assert drain(b, 1, timeout=1) == []  # neither crosses
    b.modify(resting.client_order_id, limit_price=price)
    b.cancel(doomed.client_order_id)
    (fill,) = drain(b, 1)
    assert isinstance(fill, Fill) and fill.client_order_id == resting.client_order_id
    drain(b, 1, timeout=1)
    view = b.lookup(doomed.client_order_id)
    assert view is not None and view.status is BrokerOrderStatus.CANCELLED
    (row,) = kite_sim.tagged(resting.client_order_id)
    assert row["modified"] is True and row["status"] == "COMPLETE"
