"""The paper broker charges per contract note (STT to the rupee, DP once per scrip and
day) and charges a restored book exactly as one that never stopped."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from alphaspt.brokers.paper import PaperBroker, PaperConfig
from alphaspt.core.events import Fill, Product, Side

from .conftest import OrderFactory, TickFactory

SELL = Side.SELL


def _sell_twice(broker: PaperBroker, make_order: OrderFactory, make_tick: TickFactory,
                between: Callable[[PaperBroker], PaperBroker]) -> list[Fill]:
    fills: list[Fill] = []
    for n, ts in enumerate((100, 300)):
        if n:
            broker = between(broker)
        order = msgspec.structs.replace(
            make_order(SELL, 5, signal_id=f"s{n}", symbol="INFY", exchange_ts=ts),
            product=Product.CNC)
        broker.place(order)
        fills += [e for e in broker.on_tick(make_tick(101.0, ts + 1, symbol="INFY"))
                  if isinstance(e, Fill)]
    return fills


def test_two_delivery_sells_share_one_contract_note(
    clock: Callable[[], int], make_order: OrderFactory, make_tick: TickFactory
) -> None:
    config = PaperConfig(slippage_bps=0.0)
    fills = _sell_twice(PaperBroker(config, clock=clock), make_order, make_tick,
                        lambda b: b)
    # 5 @ 101 = 505 each: STT 0.1% = 0.505 alone (-> 1); on one note 1,010 -> 1.01 -> 1,
    # so the second sell pays none. DP ₹13 + GST = 15.34 once for INFY that day.
    assert [(f.charges.stt, f.charges.dp) for f in fills] == [(1.0, 15.34), (0.0, 0.0)]
    assert [f.product for f in fills] == [Product.CNC, Product.CNC]

    # The same after a restart between the sells: from the snapshot, and key by key.
    def snapshot(b: PaperBroker) -> PaperBroker:
        return PaperBroker.restore(b.snapshot(), config, clock=clock)

    def per_key(b: PaperBroker) -> PaperBroker:
        fresh = PaperBroker(config, clock=clock)
        for po in b.order_book():
            data = b.export(po.client_order_id)
            assert data is not None
            fresh.load(data)
            fresh.load(data)  # a key seen twice is booked once
        return fresh

    for between in (snapshot, per_key):
        again = _sell_twice(PaperBroker(config, clock=clock), make_order, make_tick, between)
        assert [f.charges for f in again] == [f.charges for f in fills]


def test_intraday_sells_pay_no_dp_and_a_new_day_a_new_note(
    clock: Callable[[], int], make_order: OrderFactory, make_tick: TickFactory
) -> None:
    broker = PaperBroker(PaperConfig(slippage_bps=0.0), clock=clock)
    day_ns = 86_400 * 10**9
    charges = []
    for n, ts in enumerate((100, 300, day_ns + 100)):
        broker.place(make_order(SELL, 20, signal_id=f"m{n}", exchange_ts=ts))
        charges += [e.charges for e in broker.on_tick(make_tick(101.0, ts + 1))
                    if isinstance(e, Fill)]
    # 20 @ 101 = 2,020: 0.025% = 0.505 -> 1; the second on the same note: 1.01 -> 1 (0);
    # the next IST day is a new note: 1 again. MIS never pays DP.
    assert [(c.stt, c.dp) for c in charges] == [(1.0, 0.0), (0.0, 0.0), (1.0, 0.0)]
    assert len(broker.forget_finished(day_ns + 50)) == 2  # the first day's orders
