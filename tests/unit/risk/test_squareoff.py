"""Square-off decisions: which pairs to close, by how much, under which ids."""

from __future__ import annotations

from datetime import UTC, datetime, time

from alphaspt.brokers.base import client_order_id
from alphaspt.core.clock import ist_day
from alphaspt.core.events import OrderType, Product, RiskReason, Side
from alphaspt.risk.squareoff import (
    Close,
    SquareOffReason,
    closes,
    cutoff_ns,
    is_reducing,
    is_square_off,
    register,
    square_off_id,
    square_off_signal,
)
from alphaspt.risk.state import PendingOrder, Position, RiskState

SECOND = 1_000_000_000


def state(positions: dict[str, dict[str, int]],
          pending: list[tuple[str, str, str, int]] = ()) -> RiskState:  # type: ignore[assignment]
    st = RiskState()
    for strategy, book in positions.items():
        st.positions[strategy] = {s: Position(quantity=q, avg_price=100.0)
                                  for s, q in book.items()}
    for sid, strategy, symbol, qty in pending:
        st.pending[client_order_id(sid)] = PendingOrder(
            signal_id=sid, strategy=strategy, symbol=symbol, remaining=qty, price=100.0)
    return st


def test_the_cutoff_instant_is_ist_wall_time_of_the_day() -> None:
    ts = int(datetime(2025, 1, 7, 9, 50, tzinfo=UTC).timestamp()) * SECOND  # 15:20 IST
    day = ist_day(ts)
    assert cutoff_ns(day, time(15, 20)) == ts
    assert cutoff_ns(day, time(15, 20, 1)) == ts + SECOND
    assert ist_day(cutoff_ns(day, time(0, 0))) == day
    assert ist_day(cutoff_ns(day, time(0, 0)) - 1) == day - 1


def test_every_open_pair_of_the_chosen_strategies_is_closed_in_a_fixed_order() -> None:
    st = state({"b": {"TCS": -5, "INFY": 7}, "a": {"SBIN": 3}, "other": {"SBIN": 9}})
    assert closes(st, ["b", "a"]) == [
        Close("a", "SBIN", -3), Close("b", "INFY", -7), Close("b", "TCS", 5)]
    assert closes(st, []) == []


def test_pending_counts_and_a_working_order_alone_still_needs_a_square_off() -> None:
    # 10 held and 5 more bought pending: close 15 (the engine closes what it really holds).
    assert closes(state({"a": {"X": 10}}, [("s1", "a", "X", 5)]), ["a"]) == [
        Close("a", "X", -15)]
    # Flat, but a resting BUY 4 may fill: it must be squared off (cancelled by the engine).
    assert closes(state({}, [("s1", "a", "X", 4)]), ["a"]) == [Close("a", "X", -4)]
    # Long 10 with a working SELL 10: net flat, but the position is real.
    assert closes(state({"a": {"X": 10}}, [("s1", "a", "X", -10)]), ["a"]) == [
        Close("a", "X", -10)]


def test_a_pair_covered_by_an_outstanding_square_off_is_left_alone() -> None:
    sq = square_off_id(SquareOffReason.FLATTEN, "cmd-1", "a", "X")
    assert is_square_off(sq) and not is_square_off("sig-1")
    st = state({"a": {"X": 10}}, [(sq, "a", "X", -10)])
    assert closes(st, ["a"]) == []
    # ...but not when something else is pending too.
    st = state({"a": {"X": 10}}, [(sq, "a", "X", -10), ("s2", "a", "X", 3)])
    assert closes(st, ["a"]) == [Close("a", "X", -3)]


def test_ids_derive_from_reason_key_strategy_and_symbol_only() -> None:
    a = square_off_id(SquareOffReason.MIS_CUTOFF, 20095, "a", "X")
    assert a == square_off_id(SquareOffReason.MIS_CUTOFF, 20095, "a", "X")
    others = {square_off_id(SquareOffReason.MIS_CUTOFF, 20096, "a", "X"),
              square_off_id(SquareOffReason.MIS_CARRIED, 20095, "a", "X"),
              square_off_id(SquareOffReason.MIS_CUTOFF, 20095, "b", "X"),
              square_off_id(SquareOffReason.MIS_CUTOFF, 20095, "a", "Y")}
    assert a not in others and len(others) == 4


def test_the_square_off_signal_is_a_market_order_against_the_position() -> None:
    s = square_off_signal(Close("a", "X", -7), SquareOffReason.MIS_CUTOFF, 20095, 123,
                          101.5, Product.MIS)
    assert (s.side, s.quantity, s.order_type, s.exchange_ts) == (
        Side.SELL, 7, OrderType.MARKET, 123)
    assert s.reason == "square-off:MIS_CUTOFF" and s.ref_price == 101.5
    assert s.event_id == square_off_id(SquareOffReason.MIS_CUTOFF, 20095, "a", "X")
    b = square_off_signal(Close("a", "X", 2), SquareOffReason.FLATTEN, "c", 1, 1.0, Product.CNC)
    assert (b.side, b.quantity, b.product) == (Side.BUY, 2, Product.CNC)


def test_register_makes_it_pending_counted_and_remembered() -> None:
    st = state({"a": {"X": 10}})
    s = square_off_signal(Close("a", "X", -10), SquareOffReason.FLATTEN, "c", 5 * SECOND,
                          100.0, Product.MIS)
    decision, evicted = register(st, s, client_order_id(s.event_id), "p", "flatten", 10)
    assert decision.approved and decision.reason is RiskReason.OK and evicted is None
    assert st.pending_quantity("a", "X") == -10
    assert st.orders_within("a", 5 * SECOND, SECOND) == 1
    assert st.decisions[s.event_id] == decision
    assert closes(st, ["a"]) == [], "covered now"


def test_register_evicts_the_oldest_decision_beyond_the_bound() -> None:
    st = RiskState()
    ids = []
    for i in range(3):
        s = square_off_signal(Close("a", f"S{i}", 1), SquareOffReason.FLATTEN, "c", i, 1.0,
                              Product.MIS)
        ids.append(s.event_id)
        _, evicted = register(st, s, client_order_id(s.event_id), None, "m", 2)
    assert evicted == ids[0] and list(st.decisions) == ids[1:]


def test_reducing_means_towards_flat_without_crossing() -> None:
    assert is_reducing(10, -10) and is_reducing(-5, 3)
    assert not is_reducing(10, -11) and not is_reducing(0, -1) and not is_reducing(3, 1)
