"""Positions and P&L from fills, de-duplication, day roll-over and JSON persistence."""

from __future__ import annotations

import msgspec
import pytest

from alphaspt.core.events import RiskReason, Side
from alphaspt.risk import RiskEngine, RiskState
from alphaspt.risk.state import Position, ist_day
from tests.unit.risk.conftest import (
    PROFILE,
    SECOND,
    T0,
    engine_with_prices,
    fill,
    limits,
    signal,
    tick,
)

S = "momentum-demo"


def test_average_cost_realised_and_unrealised_pnl() -> None:
    st = RiskState()
    st.apply_fill(fill(Side.BUY, 10, 100.0))
    st.apply_fill(fill(Side.BUY, 10, 110.0))
    assert st.positions[S]["RELIANCE"] == Position(quantity=20, avg_price=105.0)
    st.apply_fill(fill(Side.SELL, 15, 120.0))  # realises 15 x (120 - 105) = 225
    assert st.positions[S]["RELIANCE"] == Position(quantity=5, avg_price=105.0)
    assert st.realised[S] == pytest.approx(225.0)
    st.apply_fill(fill(Side.SELL, 10, 100.0))  # closes 5 at -5 each, opens -5 at 100
    assert st.positions[S]["RELIANCE"] == Position(quantity=-5, avg_price=100.0)
    assert st.realised[S] == pytest.approx(200.0)
    st.update_price("RELIANCE", 90.0)
    assert st.unrealised(S) == pytest.approx(50.0)  # short 5 from 100 to 90
    assert st.daily_pnl(S) == pytest.approx(250.0)
    st.apply_fill(fill(Side.BUY, 5, 90.0, charges=3.5))
    assert "RELIANCE" not in st.positions[S]
    assert st.realised[S] == pytest.approx(250.0 - 3.5)


def test_unrealised_is_zero_without_a_price() -> None:
    st = RiskState()
    st.apply_fill(fill(Side.BUY, 10, 100.0))
    assert st.unrealised(S) == 0.0


def test_fills_are_deduplicated_by_trade_id() -> None:
    engine = RiskEngine()
    f = fill(Side.BUY, 10, 100.0, trade_id="T-1")
    assert engine.on_fill(f) is True
    assert engine.on_fill(f) is False
    assert engine.on_fill(fill(Side.BUY, 10, 101.0, trade_id="T-1")) is False  # same trade id
    assert engine.state.position(S, "RELIANCE") == 10
    # remembered across an IST day boundary, forgotten after the retention period
    engine.on_fill(fill(Side.SELL, 1, 100.0, trade_id="T-2", ts=T0 + 86_400 * SECOND))
    assert engine.on_fill(fill(Side.BUY, 10, 100.0, trade_id="T-1")) is False
    engine.on_fill(fill(Side.SELL, 1, 100.0, ts=T0 + 3 * 86_400 * SECOND))
    assert "T-1" not in engine.state.trade_ids
    assert "T-2" in engine.state.trade_ids


def test_ist_day_changes_at_ist_midnight() -> None:
    midnight_ist = T0 + (14 * 3600) * SECOND  # 10:00 + 14 h
    assert ist_day(midnight_ist - 1) + 1 == ist_day(midnight_ist)
    assert ist_day(T0) == ist_day(midnight_ist - 1)


def test_state_round_trips_through_json_and_keeps_deciding_the_same() -> None:
    engine = engine_with_prices(RELIANCE=100.0, TCS=3500.0)
    engine.on_fill(fill(Side.BUY, 100, 99.0, trade_id="T-1", charges=12.5))
    for i in range(4):
        assert engine.evaluate(signal(quantity=1), PROFILE, limits(), T0 + i).approved
    engine.evaluate(signal(quantity=99_999), PROFILE, limits(), T0)
    engine.set_kill_switch("aggressive", True)
    engine.pause("mr-demo")

    data = engine.state.to_json()
    restored = RiskState.from_json(data)
    assert restored == engine.state
    assert RiskState.from_json(data.decode()).to_json() == data

    again = RiskEngine(restored)
    # the rate window survived: one more order this second, then the profile's 5/s
    assert again.evaluate(signal(quantity=1), PROFILE, limits(), T0 + 10).approved
    d = again.evaluate(signal(quantity=1), PROFILE, limits(), T0 + 11)
    assert d.reason is RiskReason.ORDER_RATE_SECOND
    assert again.evaluate(signal(), "aggressive", limits(), T0).reason is RiskReason.KILL_SWITCH
    assert again.on_fill(fill(Side.BUY, 100, 99.0, trade_id="T-1")) is False
    assert again.state.pending_quantity(S, "RELIANCE") == 5


@pytest.mark.parametrize("data", [b"", b"{not json", b'{"positions": 3}', b'{"version": 2}', b"[]"])
def test_invalid_state_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="risk state"):
        RiskState.from_json(data)


DAY = 86_400 * SECOND


def test_pending_orders_expire_the_day_after_their_own_or_on_request() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    for i in range(3):
        assert engine.evaluate(signal(quantity=10), PROFILE, limits(), T0 + i * SECOND).approved
    expired = engine.state.expire_pending(T0 + SECOND)
    assert [p.approved_ns for p in expired] == [T0]
    assert engine.state.pending_quantity(S, "RELIANCE") == 20
    # The next day's first event: yesterday's two are still out (their fill or the
    # cancellation is on its way), so they still count.
    assert engine.evaluate(signal(quantity=1), PROFILE, limits(), T0 + DAY).approved
    assert engine.state.pending_quantity(S, "RELIANCE") == 21
    engine.on_tick(tick("RELIANCE", 100.0, ts=T0 + 2 * DAY))  # nothing older can be open
    assert engine.state.pending_quantity(S, "RELIANCE") == 1


def test_a_late_fill_of_yesterday_counts_once_across_the_day_roll() -> None:
    # A replay's ticks reach the new day before the last order of the old one has filled:
    # the exposure must not vanish in between, nor count twice after the fill.
    engine = engine_with_prices(RELIANCE=100.0)
    sig = signal(quantity=10)
    assert engine.evaluate(sig, PROFILE, limits(), T0).approved
    engine.on_tick(tick("RELIANCE", 100.0, ts=T0 + DAY))
    assert engine.state.pending_quantity(S, "RELIANCE") == 10
    coid = next(iter(engine.state.pending))
    engine.on_fill(fill(Side.BUY, 10, 100.0, client_order_id=coid, ts=T0 + SECOND))
    assert engine.state.position(S, "RELIANCE") == 10
    assert engine.state.pending_quantity(S, "RELIANCE") == 0


def test_state_round_trips_key_by_key() -> None:
    engine = engine_with_prices(RELIANCE=100.0, TCS=3500.0)
    engine.on_fill(fill(Side.BUY, 100, 99.0, trade_id="T-1", charges=12.5))
    for i in range(4):
        assert engine.evaluate(signal(quantity=1), PROFILE, limits(), T0 + i).approved
    engine.set_kill_switch("aggressive", True)
    engine.pause("mr-demo")
    items = {}
    for key in engine.state.state_keys():
        value = engine.state.export(key)
        assert value is not None, key
        items[key] = value
    restored = RiskState.from_items(items)
    assert restored.to_json() == RiskState.from_items(items).to_json()
    assert restored.positions == engine.state.positions
    assert restored.pending == engine.state.pending
    assert restored.trade_ids == engine.state.trade_ids
    assert set(restored.decisions) == set(engine.state.decisions)
    assert restored.kill_switch_profiles == ["aggressive"] and restored.paused == ["mr-demo"]
    assert restored.account_order_times == engine.state.account_order_times
    assert engine.state.export("pend/nope") is None and engine.state.export("book/nobody") is None
    with pytest.raises(ValueError, match="unknown risk state key"):
        RiskState.from_items({"bogus/x": b"1"})


def test_approval_times_are_packed_in_the_changelog_and_old_records_still_load() -> None:
    state = RiskState()
    pile = [T0 + 1, T0 + 5, *[T0 + 900 * SECOND] * 20_000]  # square-offs on one instant
    state.account_order_times = list(pile)
    state.strategy_order_times["s"] = list(pile)
    meta, rate = state.export("meta"), state.export("rate/s")
    assert meta is not None and rate is not None
    assert len(meta) < 300 and len(rate) < 100, (len(meta), len(rate))  # 20,002 times
    restored = RiskState.from_items({"meta": meta, "rate/s": rate})
    assert restored.account_order_times == pile
    assert restored.strategy_order_times == {"s": pile}

    old = {"rate/s": msgspec.json.encode([T0, T0, T0 + 3])}  # a plain list, as written before
    assert RiskState.from_items(old).strategy_order_times == {"s": [T0, T0, T0 + 3]}
    for bad in ([[T0, 0]], [[T0, 1], [-5, 1]], [["x", 1]], [[T0]]):
        with pytest.raises(ValueError, match="invalid approval times"):
            RiskState.from_items({"rate/s": msgspec.json.encode(bad)})
