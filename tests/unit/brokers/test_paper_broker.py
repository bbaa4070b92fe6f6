"""Paper broker: idempotent placement, deterministic fills, restart-safe state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from alphaspt.brokers.base import Broker, BrokerOrderStatus, cancellation
from alphaspt.brokers.paper import EXPIRED, PaperBroker, PaperConfig
from alphaspt.core.clock import ist_day_start
from alphaspt.core.events import Fill, Order, OrderRejected, OrderType, Side, Tick, stable_id
from alphaspt.market import Instruments, load_instruments
from alphaspt.portfolio.charges import ChargeCalculator
from alphaspt.portfolio.ledger import Portfolio
from alphaspt.risk.squareoff import SquareOffReason, square_off_id

OrderFactory = Callable[..., Order]  # fixtures in conftest.py
TickFactory = Callable[..., Tick]
Clock = Callable[[], int]
BUY, SELL = Side.BUY, Side.SELL
LIMIT = OrderType.LIMIT


def only_fill(events: list[Fill | OrderRejected]) -> Fill:
    assert len(events) == 1
    (fill,) = events
    assert isinstance(fill, Fill)
    return fill


def test_is_a_broker(clock: Clock) -> None:
    assert isinstance(PaperBroker(clock=clock), Broker)


def test_market_buy_fills_on_the_next_tick_with_slippage(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(PaperConfig(slippage_bps=2.0, tick_size=0.05), clock=clock)
    order = make_order(BUY, 10, exchange_ts=100)
    ack = broker.place(order)
    assert (ack.status, ack.duplicate, ack.rejection) == (BrokerOrderStatus.OPEN, False, None)
    # The decision tick itself (same exchange_ts) and older ticks never fill it.
    assert broker.on_tick(make_tick(990.0, 100)) == []
    assert broker.on_tick(make_tick(990.0, 99)) == []
    assert broker.on_tick(make_tick(1000.0, 101, symbol="TCS")) == []
    fill = only_fill(broker.on_tick(make_tick(1000.0, 101)))
    # 1000 x (1 + 0.0002) = 1000.20, already on the 0.05 grid
    assert fill.price == 1000.2
    assert fill.quantity == 10
    assert fill.trade_id == fill.event_id == stable_id("paper", order.client_order_id, 1)
    assert (fill.signal_exchange_ts, fill.exchange_ts) == (100, 101)
    assert fill.charges == ChargeCalculator().for_fill(BUY, 10, 1000.2)
    assert (fill.strategy, fill.symbol, fill.side) == ("momo", "RELIANCE", BUY)
    entry = broker.lookup(order.client_order_id)
    assert entry is not None
    assert (entry.status, entry.filled_quantity, entry.average_price) == (
        BrokerOrderStatus.COMPLETE, 10, 1000.2)
    assert entry.pending_quantity == 0
    assert broker.on_tick(make_tick(1000.0, 102)) == []  # filled once only
    with pytest.raises(ValueError, match="positive"):
        broker.on_tick(make_tick(float("nan"), 103))


@pytest.mark.parametrize(
    ("side", "tick_price", "expected"),
    [
        # 101 x 1.0002 = 101.0202 -> up to the grid: 101.05
        (BUY, 101.0, 101.05),
        # 101 x 0.9998 = 100.9798 -> down to the grid: 100.95
        (SELL, 101.0, 100.95),
        # 2,500.35 x 1.0002 = 2,500.850070 -> 2,500.90
        (BUY, 2500.35, 2500.9),
        # 2,500.35 x 0.9998 = 2,499.84993 -> 2,499.80
        (SELL, 2500.35, 2499.8),
    ],
)
def test_slippage_is_rounded_against_the_trader(
    side: Side, tick_price: float, expected: float,
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory,
) -> None:
    broker = PaperBroker(clock=clock)
    broker.place(make_order(side, 1))
    assert only_fill(broker.on_tick(make_tick(tick_price, 101))).price == expected


def test_zero_slippage_fills_at_the_tick_price(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(PaperConfig(slippage_bps=0.0), clock=clock)
    broker.place(make_order(SELL, 5))
    assert only_fill(broker.on_tick(make_tick(1234.55, 101))).price == 1234.55


def test_limit_orders_fill_when_crossed_at_the_better_price(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(clock=clock)
    buy = make_order(BUY, 3, signal_id="b", order_type=LIMIT, limit_price=995.0)
    sell = make_order(SELL, 4, signal_id="s", order_type=LIMIT, limit_price=1005.0)
    broker.place(buy)
    broker.place(sell)
    assert broker.on_tick(make_tick(1000.0, 101)) == []
    assert broker.on_tick(make_tick(995.05, 102)) == []
    f_buy = only_fill(broker.on_tick(make_tick(994.5, 103)))  # crossed: min(995, 994.5)
    assert (f_buy.client_order_id, f_buy.price) == (buy.client_order_id, 994.5)
    f_sell = only_fill(broker.on_tick(make_tick(1006.0, 104)))  # max(1005, 1006)
    assert (f_sell.client_order_id, f_sell.price) == (sell.client_order_id, 1006.0)
    assert broker.open_orders() == []


def test_limit_touching_the_limit_fills_at_the_limit(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(clock=clock)
    broker.place(make_order(BUY, 1, order_type=LIMIT, limit_price=995.0))
    assert only_fill(broker.on_tick(make_tick(995.0, 101))).price == 995.0


def test_same_client_id_twice_is_one_order(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(clock=clock)
    order = make_order(BUY, 10)
    first = broker.place(order)
    second = broker.place(order)
    # Even a different order under the same client id is not placed.
    third = broker.place(make_order(SELL, 99))
    assert not first.duplicate
    assert second.duplicate
    assert third.duplicate
    assert second.order == third.order == first.order
    assert len(broker.order_book()) == 1
    assert len(broker.on_tick(make_tick(1000.0, 101))) == 1
    again = broker.place(order)
    assert again.duplicate
    assert again.status is BrokerOrderStatus.COMPLETE
    assert broker.on_tick(make_tick(1000.0, 102)) == []


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"quantity": 0}, "quantity must be positive"),
        ({"order_type": LIMIT}, "needs a positive limit price"),
        ({"order_type": LIMIT, "limit_price": -5.0}, "needs a positive limit price"),
        ({"order_type": LIMIT, "limit_price": 100.03}, "not a multiple of the tick size"),
        ({"coid": "not-alnum!"}, "alphanumeric"),
        ({"coid": "A" * 21}, "alphanumeric"),
        ({"symbol": ""}, "symbol"),
    ],
)
def test_invalid_orders_are_rejected_deterministically(
    overrides: dict[str, object], reason: str,
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory,
) -> None:
    broker = PaperBroker(clock=clock)
    quantity = overrides.pop("quantity", 10)
    order = make_order(BUY, quantity, **overrides)
    ack = broker.place(order)
    assert ack.status is BrokerOrderStatus.REJECTED
    assert ack.rejection is not None
    assert reason in ack.rejection.reason
    assert ack.rejection.event_id == stable_id("paper-reject", order.client_order_id)
    assert (ack.rejection.signal_id, ack.rejection.strategy) == ("sig-1", "momo")
    again = broker.place(order)
    assert again.duplicate
    assert again.rejection == ack.rejection  # identical event, ingest_ts included
    assert broker.on_tick(make_tick(100.0, 101, symbol=order.symbol or "X")) == []


def test_orders_of_a_symbol_fill_in_placement_order(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(clock=clock)
    a = make_order(BUY, 1, signal_id="a")
    b = make_order(SELL, 2, signal_id="b", exchange_ts=150)
    broker.place(a)
    broker.place(b)
    first = broker.on_tick(make_tick(500.0, 120))  # after a, before b's decision tick
    assert [f.client_order_id for f in first] == [a.client_order_id]
    assert [o.client_order_id for o in broker.open_orders()] == [b.client_order_id]
    second = broker.on_tick(make_tick(500.0, 151))
    assert [f.client_order_id for f in second] == [b.client_order_id]
    assert [o.client_order_id for o in broker.order_book()] == [
        a.client_order_id, b.client_order_id]


def _session(broker: PaperBroker, make_order: OrderFactory, make_tick: TickFactory,
             restart: bool) -> tuple[list[Fill | OrderRejected], PaperBroker]:
    out: list[Fill | OrderRejected] = []
    broker.place(make_order(BUY, 10, signal_id="x"))
    broker.place(make_order(SELL, 5, signal_id="y", order_type=LIMIT, limit_price=1010.0))
    out += broker.on_tick(make_tick(1000.0, 101))
    if restart:
        broker = PaperBroker.restore(broker.snapshot(), broker.config, clock=broker._clock)
    assert broker.place(make_order(BUY, 10, signal_id="x")).duplicate
    out += broker.on_tick(make_tick(1012.0, 102))
    return out, broker


def test_snapshot_restore_continues_exactly(
    make_order: OrderFactory, make_tick: TickFactory
) -> None:
    def fresh_clock() -> Clock:
        counter = iter(range(10_000))
        return lambda: next(counter)

    plain, b1 = _session(PaperBroker(clock=fresh_clock()), make_order, make_tick, False)
    restarted, b2 = _session(PaperBroker(clock=fresh_clock()), make_order, make_tick, True)
    assert len(plain) == 2
    assert restarted == plain
    assert b2.order_book() == b1.order_book()
    assert b2.snapshot() == b1.snapshot()
    with pytest.raises(ValueError, match="version"):
        PaperBroker.restore(b'{"v": 99, "orders": []}')


def test_two_brokers_fed_the_same_events_agree(
    make_order: OrderFactory, make_tick: TickFactory
) -> None:
    def run() -> list[Fill | OrderRejected]:
        counter = iter(range(10_000))
        broker = PaperBroker(clock=lambda: next(counter))
        out: list[Fill | OrderRejected] = []
        for i in range(20):
            broker.place(make_order(BUY if i % 2 else SELL, i + 1, signal_id=f"s{i}",
                                    exchange_ts=100 + i))
            out += broker.on_tick(make_tick(1000.0 + i * 0.35, 101 + i))
        return out

    first = run()
    assert len(first) == 20
    assert run() == first


def test_round_trip_through_broker_and_portfolio(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(PaperConfig(slippage_bps=0.0), clock=clock)
    pf = Portfolio("momo")
    broker.place(make_order(BUY, 100, signal_id="open", exchange_ts=100))
    for event in broker.on_tick(make_tick(1000.0, 101)):
        pf.apply(event)
    broker.place(make_order(SELL, 100, signal_id="close", exchange_ts=200))
    for event in broker.on_tick(make_tick(1010.0, 201)):
        pf.apply(event)
    s = pf.snapshot()
    # Hand computation in tests/unit/portfolio/test_portfolio_charges.py (intraday
    # round trip): buy 30.34 + sell 52.38 (IPFT included, STT rounded to the rupee)
    assert (s.realised_pnl, s.charges, s.net_pnl, s.fills) == (1000.0, 82.72, 917.28, 2)


# -- the instrument's tick ----------------------------------------------------------------------

def _instruments() -> Instruments:
    return load_instruments(Path(__file__).resolve().parents[3] / "examples" / "instruments.csv")


def test_a_one_paisa_limit_on_a_stock_under_250_is_valid(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    order = make_order(BUY, 10, symbol="TATASTEEL", order_type=LIMIT, limit_price=180.01)
    assert PaperBroker(clock=clock).place(order).rejection is not None  # the ₹0.05 default
    broker = PaperBroker(clock=clock, instruments=_instruments())
    assert broker.place(order).rejection is None
    fill = only_fill(broker.on_tick(make_tick(180.0, 101, symbol="TATASTEEL")))
    assert fill.price == 180.0
    # RELIANCE keeps its ₹0.05 tick
    bad = make_order(BUY, 1, signal_id="r", order_type=LIMIT, limit_price=1400.01)
    assert broker.place(bad).rejection is not None


@pytest.mark.parametrize(("side", "expected"), [(BUY, 180.04), (SELL, 179.96)])
def test_market_fills_round_against_the_trader_on_the_instruments_tick(
    side: Side, expected: float,
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory,
) -> None:
    # 180 x (1 ± 0.0002) = 180.036 / 179.964 -> 180.04 / 179.96 on the ₹0.01 grid
    broker = PaperBroker(clock=clock, instruments=_instruments())
    broker.place(make_order(side, 1, symbol="TATASTEEL"))
    assert only_fill(broker.on_tick(make_tick(180.0, 101, symbol="TATASTEEL"))).price == expected


def test_an_off_grid_print_fills_a_limit_on_the_grid(
    clock: Clock, make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(clock=clock, instruments=_instruments())
    broker.place(make_order(BUY, 1, signal_id="b", order_type=LIMIT, limit_price=1000.0))
    broker.place(make_order(SELL, 1, signal_id="s", order_type=LIMIT, limit_price=990.0))
    fills = broker.on_tick(make_tick(999.97, 101))
    prices = sorted(f.price for f in fills if isinstance(f, Fill))
    assert prices == [999.95, 1000.0]  # sell floors to 999.95, buy ceils to 1000.00


def test_cancel_stops_a_working_limit_order_and_a_second_cancel_does_nothing(
    make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker()
    order = make_order(Side.BUY, 10, order_type=OrderType.LIMIT, limit_price=99.0)
    broker.place(order)
    assert broker.on_tick(make_tick(100.0, 200)) == []
    cancelled = broker.cancel(order.client_order_id, "cancelled: kill switch")
    assert cancelled is not None and cancelled.status is BrokerOrderStatus.CANCELLED
    assert cancelled.pending_quantity == 0 and cancelled.reason == "cancelled: kill switch"
    assert broker.cancel(order.client_order_id, "again") is None
    assert broker.on_tick(make_tick(98.0, 300)) == [], "a cancelled order never fills"
    assert broker.open_orders() == []
    restored = PaperBroker()
    data = broker.export(order.client_order_id)
    assert data is not None
    restored.load(data)
    assert restored.on_tick(make_tick(98.0, 400)) == [], "cancelled after a restore too"


def test_cancel_of_a_filled_or_unknown_order_is_none(
    make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker()
    order = make_order(Side.BUY, 10)
    broker.place(order)
    assert len(broker.on_tick(make_tick(100.0, 200))) == 1
    assert broker.cancel(order.client_order_id, "x") is None
    assert broker.cancel("APnope", "x") is None


def test_refuse_books_the_order_as_rejected_once(make_order: OrderFactory) -> None:
    broker = PaperBroker()
    order = make_order(Side.SELL, 5)
    first = broker.refuse(order, "nothing to close")
    assert first.rejection is not None and first.rejection.reason == "nothing to close"
    again = broker.refuse(order, "nothing to close")
    assert again.duplicate and again.rejection == first.rejection
    assert broker.place(order).duplicate, "a refused client id is never placed later"


# -- day orders: an order fills on its own IST day or expires ---------------------------------

DAY = 20_200  # an IST day (days since 1970-01-01)
AT_1529 = ist_day_start(DAY) + (15 * 3600 + 29 * 60) * 1_000_000_000
NEXT_OPEN = ist_day_start(DAY + 1) + (9 * 3600 + 15 * 60) * 1_000_000_000


def test_a_market_order_after_the_days_last_tick_expires_at_the_next_days_first_tick(
    make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker()
    order = make_order(BUY, 10, exchange_ts=AT_1529)
    broker.place(order)
    (expired,) = broker.on_tick(make_tick(1000.0, NEXT_OPEN))
    assert isinstance(expired, OrderRejected)
    assert expired.reason == "cancelled: " + EXPIRED
    assert (expired.side, expired.quantity, expired.client_order_id) == (
        BUY, 10, order.client_order_id)
    assert expired == cancellation(order, 10, EXPIRED, expired.ingest_ts), "the one builder"
    entry = broker.lookup(order.client_order_id)
    assert entry is not None and entry.status is BrokerOrderStatus.CANCELLED
    assert broker.on_tick(make_tick(1000.0, NEXT_OPEN + 1)) == [], "never fills later"
    assert broker.open_orders() == []


def test_a_working_limit_fills_on_its_day_but_not_on_the_next(
    make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker()
    same_day = make_order(BUY, 5, signal_id="s1", order_type=LIMIT, limit_price=990.0,
                          exchange_ts=AT_1529)
    overnight = make_order(BUY, 5, signal_id="s2", order_type=LIMIT, limit_price=980.0,
                           exchange_ts=AT_1529)
    broker.place(same_day)
    broker.place(overnight)
    fill = only_fill(broker.on_tick(make_tick(985.0, AT_1529 + 1)))  # crosses 990 only
    assert fill.client_order_id == same_day.client_order_id
    # The next morning's print crosses 980, but the day order is gone.
    (expired,) = broker.on_tick(make_tick(970.0, NEXT_OPEN))
    assert isinstance(expired, OrderRejected) and expired.reason.endswith(EXPIRED)


def test_only_expires_just_that_order(make_order: OrderFactory, make_tick: TickFactory) -> None:
    broker = PaperBroker()
    a = make_order(BUY, 1, signal_id="a", exchange_ts=AT_1529)
    b = make_order(BUY, 1, signal_id="b", exchange_ts=AT_1529)
    broker.place(a)
    broker.place(b)
    (out,) = broker.on_tick(make_tick(1000.0, NEXT_OPEN), only=b.client_order_id)
    assert out.client_order_id == b.client_order_id
    assert [o.client_order_id for o in broker.open_orders()] == [a.client_order_id]


def test_a_square_off_never_expires(make_order: OrderFactory, make_tick: TickFactory) -> None:
    broker = PaperBroker()
    close = make_order(SELL, 10, signal_id=square_off_id(
        SquareOffReason.MIS_CUTOFF, DAY, "momo", "RELIANCE"), exchange_ts=AT_1529)
    broker.place(close)
    assert broker.expire(ist_day_start(DAY + 2)) == []
    fill = only_fill(broker.on_tick(make_tick(1000.0, NEXT_OPEN)))
    assert fill.client_order_id == close.client_order_id


def test_expire_sweeps_orders_of_symbols_that_did_not_tick_and_keeps_newer_ones(
    make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker()
    old = make_order(BUY, 3, signal_id="old", symbol="TCS", exchange_ts=AT_1529)
    new = make_order(BUY, 3, signal_id="new", symbol="TCS", exchange_ts=NEXT_OPEN)
    broker.place(old)
    broker.place(new)
    (expired,) = broker.expire(ist_day_start(DAY + 1))
    assert expired.client_order_id == old.client_order_id and expired.quantity == 3
    assert [o.client_order_id for o in broker.open_orders()] == [new.client_order_id]
    assert broker.expire(ist_day_start(DAY + 1)) == [], "once"
    restored = PaperBroker.restore(broker.snapshot())
    assert [o.client_order_id for o in restored.open_orders()] == [new.client_order_id]
