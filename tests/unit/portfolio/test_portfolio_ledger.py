"""Ledger worked examples, every figure computed by hand."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from alphaspt.core.cache import PositionView, StrategyView, TotalsView
from alphaspt.core.events import (
    Fill,
    Order,
    OrderRejected,
    OrderType,
    RiskDecision,
    RiskReason,
    Side,
    Signal,
)
from alphaspt.portfolio.charges import ChargeCalculator
from alphaspt.portfolio.ledger import (
    Ledger,
    Portfolio,
    PortfolioSnapshot,
    PositionSnapshot,
    TotalsSnapshot,
)

FillFactory = Callable[..., Fill]  # the make_fill fixture (conftest.py)
BUY, SELL = Side.BUY, Side.SELL


def position(pf: Portfolio, symbol: str = "RELIANCE") -> PositionSnapshot:
    (p,) = [p for p in pf.snapshot().positions if p.symbol == symbol]
    return p


def test_long_then_partial_close(make_fill: FillFactory) -> None:
    pf = Portfolio("momo")
    pf.apply(make_fill(BUY, 100, 1000.0))
    pf.apply(make_fill(BUY, 50, 1030.0))
    # avg = (100 x 1000 + 50 x 1030) / 150 = 151,500 / 150 = 1010
    assert position(pf).avg_price == 1010.0
    pf.apply(make_fill(SELL, 60, 1050.0))
    # realised = (1050 - 1010) x 60 = 2400; avg unchanged on a reduction
    pf.mark("RELIANCE", 1020.0)
    p = position(pf)
    assert (p.quantity, p.avg_price, p.last_price) == (90, 1010.0, 1020.0)
    assert p.realised_pnl == 2400.0
    assert p.unrealised_pnl == 900.0  # (1020 - 1010) x 90
    s = pf.snapshot()
    assert s.gross_exposure == 91_800.0  # 90 x 1020
    assert s.net_pnl == 3300.0
    assert (s.orders, s.fills, s.rejections) == (0, 3, 0)


def test_flip_long_to_short_resets_average_to_fill_price(make_fill: FillFactory) -> None:
    pf = Portfolio("momo")
    pf.apply(make_fill(BUY, 100, 500.0))
    pf.apply(make_fill(SELL, 150, 520.0))
    # closes 100 long: (520 - 500) x 100 = 2000; opens 50 short at 520
    p = position(pf)
    assert (p.quantity, p.avg_price, p.realised_pnl) == (-50, 520.0, 2000.0)
    pf.mark("RELIANCE", 510.0)
    assert position(pf).unrealised_pnl == 500.0  # (510 - 520) x -50
    assert pf.snapshot().gross_exposure == 25_500.0  # |-50| x 510


def test_short_cover_in_two_steps(make_fill: FillFactory) -> None:
    pf = Portfolio("meanrev")
    pf.apply(make_fill(SELL, 200, 250.0, strategy="meanrev"))
    pf.apply(make_fill(BUY, 120, 240.0, strategy="meanrev"))
    # short realised = (avg - buy) x qty = (250 - 240) x 120 = 1200
    p = position(pf)
    assert (p.quantity, p.avg_price, p.realised_pnl) == (-80, 250.0, 1200.0)
    pf.apply(make_fill(BUY, 80, 260.0, strategy="meanrev"))
    # (250 - 260) x 80 = -800 -> 400 in total; flat: average 0, nothing unrealised
    p = position(pf)
    assert (p.quantity, p.avg_price, p.realised_pnl, p.unrealised_pnl) == (0, 0.0, 400.0, 0.0)
    assert pf.positions() == {}
    assert pf.snapshot().gross_exposure == 0.0


def test_flip_short_to_long(make_fill: FillFactory) -> None:
    pf = Portfolio("momo")
    pf.apply(make_fill(SELL, 10, 100.0))
    pf.apply(make_fill(BUY, 25, 90.0))
    p = position(pf)
    assert (p.quantity, p.avg_price, p.realised_pnl) == (15, 90.0, 100.0)  # (100-90) x 10


def test_round_trip_of_one_lakh_with_charges(make_fill: FillFactory) -> None:
    calc = ChargeCalculator()
    pf = Portfolio("momo")
    pf.apply(make_fill(BUY, 100, 1000.0, charges=calc.for_fill(BUY, 100, 1000.0)))
    pf.apply(make_fill(SELL, 100, 1010.0, charges=calc.for_fill(SELL, 100, 1010.0)))
    s = pf.snapshot()
    # buy 30.34 + sell 52.38 (see test_portfolio_charges) = 82.72
    assert s.charges == 82.72
    assert s.realised_pnl == 1000.0  # (1010 - 1000) x 100
    assert s.unrealised_pnl == 0.0
    assert s.net_pnl == 917.28


def test_unrealised_uses_last_fill_price_until_marked(make_fill: FillFactory) -> None:
    pf = Portfolio("momo")
    pf.apply(make_fill(BUY, 10, 100.0))
    pf.apply(make_fill(BUY, 10, 102.0))
    assert position(pf).last_price == 102.0
    assert position(pf).unrealised_pnl == 20.0  # (102 - 101) x 20
    pf.mark("RELIANCE", 99.5)
    pf.apply(make_fill(BUY, 10, 103.0))  # a fill does not override a market mark
    assert position(pf).last_price == 99.5


def test_duplicate_fill_changes_nothing(make_fill: FillFactory) -> None:
    calc = ChargeCalculator()
    pf = Portfolio("momo")
    fill = make_fill(BUY, 100, 1000.0, charges=calc.for_fill(BUY, 100, 1000.0))
    assert pf.apply(fill) is True
    before = pf.snapshot()
    assert pf.apply(fill) is False
    # Same trade id, even with different contents (a corrupted redelivery): ignored.
    assert pf.apply(make_fill(BUY, 5, 1.0, trade_id=fill.trade_id)) is False
    assert pf.snapshot() == before
    assert before.fills == 1
    assert before.charges == 30.34


def test_state_round_trip_keeps_dedup(make_fill: FillFactory) -> None:
    pf = Portfolio("momo")
    f1 = make_fill(BUY, 100, 1000.0)
    pf.apply(f1)
    pf.apply(make_fill(SELL, 30, 1012.35, symbol="INFY"))
    pf.mark("RELIANCE", 1001.15)
    restored = Portfolio.from_json(pf.to_json())
    assert restored.snapshot() == pf.snapshot()
    assert restored.apply(f1) is False
    assert restored.to_json() == pf.to_json()
    with pytest.raises(msgspec.ValidationError):
        Portfolio.from_json(b'{"strategy": "x", "positions": 3}')


def test_invalid_fills_are_refused_without_side_effects(make_fill: FillFactory) -> None:
    pf = Portfolio("momo")
    with pytest.raises(ValueError, match="belongs to"):
        pf.apply(make_fill(BUY, 1, 10.0, strategy="other"))
    with pytest.raises(ValueError, match="quantity"):
        pf.apply(make_fill(BUY, 0, 10.0))
    with pytest.raises(ValueError, match="price"):
        pf.apply(make_fill(BUY, 1, 0.0))
    with pytest.raises(ValueError, match="price"):
        pf.mark("RELIANCE", float("nan"))
    assert pf.snapshot() == PortfolioSnapshot(name="momo")


def _signal(strategy: str = "momo", sid: str = "S1") -> Signal:
    return Signal(event_id=sid, exchange_ts=1, strategy=strategy, symbol="TCS", side=BUY,
                  quantity=1, ref_price=3500.0)


def test_orders_and_rejections_count_once() -> None:
    pf = Portfolio("momo")
    order = Order(event_id="o", exchange_ts=1, client_order_id="AP1", signal_id="S1",
                  strategy="momo", symbol="TCS", side=BUY, quantity=1,
                  order_type=OrderType.MARKET)
    assert pf.apply(order) is True
    assert pf.apply(order) is False
    rej = OrderRejected(event_id="r", exchange_ts=1, client_order_id="AP1", signal_id="S1",
                        strategy="momo", symbol="TCS", reason="no margin")
    assert pf.apply(rej) is True
    assert pf.apply(rej) is False
    risk_no = RiskDecision(event_id="S2", exchange_ts=1, signal=_signal(sid="S2"),
                           approved=False, reason=RiskReason.MAX_POSITION, message="too big")
    risk_ok = RiskDecision(event_id="S3", exchange_ts=1, signal=_signal(sid="S3"),
                           approved=True, reason=RiskReason.OK, message="")
    assert pf.apply(risk_no) is True
    assert pf.apply(risk_no) is False
    assert pf.apply(risk_ok) is False
    s = pf.snapshot()
    assert (s.orders, s.fills, s.rejections) == (1, 0, 2)


def test_ledger_routes_by_strategy_marks_everyone_and_totals(make_fill: FillFactory) -> None:
    ledger = Ledger(["idle"])
    ledger.mark("TCS", 3500.0)
    ledger.apply(make_fill(BUY, 10, 3490.0, symbol="TCS", strategy="momo"))
    ledger.apply(make_fill(SELL, 20, 1500.0, symbol="INFY", strategy="meanrev"))
    ledger.mark("INFY", 1490.0)
    momo, meanrev = ledger.portfolio("momo"), ledger.portfolio("meanrev")
    # momo was created after the TCS mark and still sees it
    assert momo.snapshot().unrealised_pnl == 100.0  # (3500 - 3490) x 10
    assert meanrev.snapshot().unrealised_pnl == 200.0  # (1490 - 1500) x -20
    totals = ledger.totals()
    assert totals == TotalsSnapshot(strategies=3, unrealised_pnl=300.0, net_pnl=300.0,
                                    gross_exposure=64_800.0, fills=2)  # 35,000 + 29,800
    restored = Ledger.from_json(ledger.to_json())
    assert restored.snapshots() == ledger.snapshots()
    restored.mark("TCS", 3510.0)
    assert restored.portfolio("momo").snapshot().unrealised_pnl == 200.0


def test_snapshots_line_up_with_the_redis_views(make_fill: FillFactory) -> None:
    assert set(PositionSnapshot.__struct_fields__) == set(PositionView.__struct_fields__)
    assert set(PortfolioSnapshot.__struct_fields__) <= set(StrategyView.__struct_fields__)
    assert set(TotalsSnapshot.__struct_fields__) <= set(TotalsView.__struct_fields__)
    ledger = Ledger()
    ledger.apply(make_fill(BUY, 3, 101.35))
    ledger.mark("RELIANCE", 102.0)
    snap = ledger.snapshots()[0]
    view = msgspec.convert(msgspec.to_builtins(snap), StrategyView)
    assert view.name == "momo"
    assert view.positions[0].unrealised_pnl == 1.95  # (102 - 101.35) x 3
    assert view.net_pnl == snap.net_pnl
    totals = msgspec.convert(msgspec.to_builtins(ledger.totals()), TotalsView)
    assert totals.gross_exposure == 306.0


def test_ledger_round_trips_key_by_key_and_prunes_old_days() -> None:
    from alphaspt.core.clock import ist_day

    ledger = Ledger(["s"])
    day1 = 1_736_221_500_000_000_000
    first = Fill(event_id="t1", exchange_ts=day1, trade_id="t1", client_order_id="APa",
                 strategy="s", symbol="INFY", side=Side.BUY, quantity=10, price=100.0)
    assert ledger.apply(first)
    ledger.mark("INFY", 101.0)
    keys = ["pf/s", "px/INFY", "t/s/t1"]
    items = {k: v for k in keys if (v := ledger.export(k)) is not None}
    assert set(items) == set(keys)
    again = Ledger.from_items(items)
    assert again.snapshots() == ledger.snapshots()
    assert not again.apply(first)  # the seen trade id survived
    assert again.prune(ist_day(day1) + 1) == ["t/s/t1"]
    assert again.export("t/s/t1") is None
    assert again.snapshots()[0].fills == 1  # counts stay when ids are forgotten
