"""The one average-cost core (risk state and ledger) and the FIFO round trips for reports."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaspt.core.accounting import FifoLots, RoundTrip, average_cost, round_trips
from alphaspt.core.events import Fill, Side
from alphaspt.portfolio.ledger import Ledger, Portfolio
from alphaspt.risk.state import RiskState

from .conftest import FillFactory

BUY, SELL = Side.BUY, Side.SELL
D = Decimal


def test_average_cost_worked_example() -> None:
    # Buy 10 @ 100, buy 30 @ 104: avg (1000 + 3120) / 40 = 103.
    s = average_cost(0, 0, 10, 100.0)
    s = average_cost(s.quantity, s.avg_price, 30, 104.0)
    assert (s.quantity, s.avg_price, s.realised) == (40, D(103), 0)
    # Sell 15 @ 110: realises (110 - 103) x 15 = 105; the average stays.
    s = average_cost(s.quantity, s.avg_price, -15, 110.0)
    assert (s.quantity, s.avg_price, s.realised, s.closed) == (25, D(103), D(105), 15)
    # Sell 35 @ 99: closes 25 ((99 - 103) x 25 = -100) and opens 10 short at 99.
    s = average_cost(s.quantity, s.avg_price, -35, 99.0)
    assert (s.quantity, s.avg_price, s.realised, s.closed) == (-10, D(99), D(-100), 25)
    # Buy 10 @ 97: the short realises (99 - 97) x 10 = 20 and is flat, average 0.
    s = average_cost(s.quantity, s.avg_price, 10, 97.0)
    assert (s.quantity, s.avg_price, s.realised) == (0, 0, D(20))


def test_average_cost_is_exact_where_floats_are_not() -> None:
    # Floats: (0.1 + 0.2) / 2 = 0.15000000000000002, so selling at 0.15 "loses" 6e-17.
    s = average_cost(0, 0, 1, 0.1)
    s = average_cost(s.quantity, s.avg_price, 1, 0.2)
    assert s.avg_price == D("0.15")
    assert ((0.15 - (0.1 + 0.2) / 2) * 2) != 0
    assert average_cost(s.quantity, s.avg_price, -2, 0.15).realised == 0
    assert average_cost(s.quantity, s.avg_price, -2, 0.3).realised == D("0.30")


def test_average_cost_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        average_cost(0, 0, 0, 10.0)
    with pytest.raises(ValueError, match="positive"):
        average_cost(0, 0, 1, 0.0)
    with pytest.raises(ValueError, match="finite"):
        average_cost(0, 0, 1, float("nan"))


def _fill(n: int, side: Side, qty: int, price: float) -> Fill:
    return Fill(event_id=f"T{n}", exchange_ts=n, ingest_ts=n, trade_id=f"T{n}",
                client_order_id=f"C{n}", strategy="momo", symbol="RELIANCE", side=side,
                quantity=qty, price=price)


def test_fifo_worked_example() -> None:
    fills = [_fill(1, BUY, 10, 100.0), _fill(2, BUY, 10, 110.0), _fill(3, SELL, 15, 120.0),
             _fill(4, SELL, 10, 90.0), _fill(5, BUY, 5, 95.0)]
    trips = list(round_trips(fills))
    assert trips == [
        RoundTrip(1, 10, 1, 3, D(100), D(120)),   # +200
        RoundTrip(1, 5, 2, 3, D(110), D(120)),    # +50
        RoundTrip(1, 5, 2, 4, D(110), D(90)),     # -100
        RoundTrip(-1, 5, 4, 5, D(90), D(95)),     # short 5 @ 90 bought back @ 95: -25
    ]
    assert [t.pnl for t in trips] == [200, 50, -100, -25]
    # Average cost realises the same total once flat: 125.
    q, avg, realised = 0, D(0), D(0)
    for f in fills:
        s = average_cost(q, avg, f.quantity * f.side.sign, f.price)
        q, avg, realised = s.quantity, s.avg_price, realised + s.realised
    assert (q, realised) == (0, sum(t.pnl for t in trips)) == (0, 125)


def test_fifo_open_remainder_and_bound() -> None:
    lots = FifoLots()
    for n in range(1, 6):
        assert lots.apply(_fill(n, BUY, 2, 100.0 + n)) == []
    assert (lots.quantity, len(lots)) == (10, 5)
    assert [t.quantity for t in lots.apply(_fill(9, SELL, 7, 100.0))] == [2, 2, 2, 1]
    assert (lots.quantity, len(lots)) == (3, 2)  # closed lots are gone
    with pytest.raises(ValueError, match="positive"):
        lots.apply(_fill(10, SELL, 0, 100.0))


_trade = st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 50),
                   st.integers(1, 40_000).map(lambda p: p * 0.05))


@settings(max_examples=150, deadline=None)
@given(st.lists(_trade, min_size=1, max_size=25))
def test_ledger_risk_state_and_a_rational_oracle_agree(
    trades: list[tuple[Side, int, float]],
) -> None:
    """The ledger and the risk state book the same average cost as an oracle written with
    fractions (quantity and total cost, no average kept), and FIFO's total equals it once
    every lot is closed."""
    pf = Portfolio("momo")
    rs = RiskState()
    q, cost, realised = 0, Fraction(0), Fraction(0)
    fills = []
    for n, (side, qty, price) in enumerate(trades, 1):
        f = _fill(n, side, qty, round(price, 2))
        fills.append(f)
        pf.apply(f)
        rs.apply_fill(f)
        px = Fraction(str(f.price))
        signed = f.quantity * side.sign
        for _ in range(abs(signed)):  # unit by unit: the definition, not the formula
            unit = 1 if signed > 0 else -1
            if q == 0 or (q > 0) == (unit > 0):
                cost += px * unit
            else:
                avg = cost / q
                realised += (px - avg) * (1 if q > 0 else -1)
                cost -= avg * (1 if q > 0 else -1)
            q += unit
    assert pf.quantity("RELIANCE") == rs.position("momo", "RELIANCE") == q
    assert abs(Fraction(str(pf.snapshot().realised_pnl)) - realised) <= Fraction(1, 200)
    assert rs.realised.get("momo", 0.0) == pytest.approx(float(realised), abs=1e-6)
    if q == 0:
        assert Fraction(str(sum(t.pnl for t in round_trips(fills)))) == realised


def test_ledger_state_stays_numbers_and_reads_the_old_float_state(make_fill: FillFactory) -> None:
    ledger = Ledger()
    ledger.apply(make_fill(BUY, 3, 0.1))
    ledger.apply(make_fill(BUY, 3, 0.2))
    data = ledger.export("pf/momo")
    assert data is not None
    book = msgspec.json.decode(data)
    assert book["positions"][0]["avg_price"] == 0.15  # a JSON number, as before
    assert isinstance(book["charges"], int | float)
    # A book written by the float ledger (same keys, floats) restores exactly.
    old = (b'{"strategy":"momo","positions":[{"symbol":"RELIANCE","quantity":6,'
           b'"avg_price":0.15000000000000002,"realised_pnl":0.0,"charges":0.0,'
           b'"last_fill_price":0.2}],"charges":0.0,"counts":[0,2,0]}')
    restored = Ledger.from_items({"pf/momo": old})
    pf = restored.portfolio("momo")
    assert pf.quantity("RELIANCE") == 6 and pf.fills == 2
    assert Portfolio.from_json(ledger.portfolio("momo").to_json()).snapshot() == \
        ledger.portfolio("momo").snapshot()


def test_a_bad_fill_changes_neither_the_risk_state_nor_the_ledger() -> None:
    rs, pf = RiskState(), Portfolio("momo")
    good = _fill(1, BUY, 10, 100.0)
    rs.apply_fill(good)
    pf.apply(good)
    bad = msgspec.structs.replace(_fill(2, SELL, 5, 100.0), price=0.0)
    for apply in (rs.apply_fill, pf.apply):
        with pytest.raises(ValueError, match="positive"):
            apply(bad)
    assert "T2" not in rs.trade_ids and not pf.has_trade("T2")
    assert rs.position("momo", "RELIANCE") == pf.quantity("RELIANCE") == 10
