"""Zerodha's charges per segment: round trips computed by hand (docs/charges.md has the
table), boundaries, contract-note STT rounding, and an independent oracle."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alphaspt.core.events import Charges, Product, Side
from alphaspt.portfolio.charges import (
    ZERODHA_NSE,
    ChargeCalculator,
    ChargeRates,
    ChargeSchedule,
    ContractNotes,
    Segment,
    segment_from_symbol,
    turnover_of,
)

BUY, SELL = Side.BUY, Side.SELL
MIS, CNC, NRML = Product.MIS, Product.CNC, Product.NRML
calc = ChargeCalculator()


def day(y: int, m: int, d: int) -> int:
    return (date(y, m, d) - date(1970, 1, 1)).days


MON_6_APR_2026 = day(2026, 4, 6)
TUE_31_MAR_2026 = day(2026, 3, 31)


def total(*charges: Charges) -> float:
    return round(sum(c.total for c in charges), 2)


# ---- worked round trips, one per segment -------------------------------------------------


def test_intraday_round_trip_by_hand() -> None:
    # MIS RELIANCE: buy 100 @ 1000 (turnover 1,00,000), sell 100 @ 1010 (1,01,000).
    # Buy:  brokerage 0.03% = 30.00 -> capped 20.00; STT none on buys;
    #       exchange 0.00307% = 3.07; SEBI 0.0001% = 0.10; stamp 0.003% = 3.00;
    #       GST 18% x (20 + 3.07 + 0.10 = 23.17) = 4.1706 -> 4.17.        total 30.34
    buy = calc.for_fill(BUY, 100, 1000.0, product=MIS, symbol="RELIANCE")
    assert buy == Charges(brokerage=20.0, exchange_txn=3.07, sebi=0.10, stamp_duty=3.0,
                          gst=4.17)
    # Sell: brokerage 30.30 -> 20.00; STT 0.025% = 25.25 -> 25 (to the rupee);
    #       exchange 3.1007 -> 3.10; SEBI 0.101 -> 0.10; GST 18% x 23.20 = 4.176 -> 4.18.
    #                                                                  total 52.38
    sell = calc.for_fill(SELL, 100, 1010.0, product=MIS, symbol="RELIANCE")
    assert sell == Charges(brokerage=20.0, stt=25.0, exchange_txn=3.10, sebi=0.10, gst=4.18)
    assert (buy.total, sell.total, total(buy, sell)) == (30.34, 52.38, 82.72)
    # Zerodha's calculator works on the pair: turnover 2,01,000; brokerage 40; STT 25;
    # exchange 6.1707 -> 6.17; SEBI 0.201 -> 0.20; stamp 3; GST 18% x 46.37 = 8.35.
    calculator = 40 + 25 + 6.17 + 0.20 + 3 + 8.35
    assert total(buy, sell) == pytest.approx(calculator)


def test_delivery_round_trip_by_hand() -> None:
    # CNC INFY, bought one day and sold on another (two contract notes):
    # Buy 50 @ 1500 = 75,000: brokerage 0; STT 0.1% = 75; exchange 2.3025 -> 2.30;
    #   SEBI 0.075 -> 0.08; stamp 0.015% = 11.25; GST 18% x 2.38 = 0.4284 -> 0.43. 89.06
    buy = calc.for_fill(BUY, 50, 1500.0, product=CNC, symbol="INFY", day=MON_6_APR_2026)
    assert buy == Charges(stt=75.0, exchange_txn=2.30, sebi=0.08, stamp_duty=11.25, gst=0.43)
    # Sell 50 @ 1560 = 78,000: STT 78; exchange 2.3946 -> 2.39; SEBI 0.078 -> 0.08;
    #   GST 18% x 2.47 = 0.4446 -> 0.44; DP ₹13 + 18% GST = 15.34.        96.25
    sell = calc.for_fill(SELL, 50, 1560.0, product=CNC, symbol="INFY", day=MON_6_APR_2026 + 1)
    assert sell == Charges(stt=78.0, exchange_txn=2.39, sebi=0.08, gst=0.44, dp=15.34)
    assert (buy.total, sell.total, total(buy, sell)) == (89.06, 96.25, 185.31)
    # The calculator rounds the pair's exchange charge once: 1,53,000 x 0.00307% = 4.6971
    # -> 4.70, where two contract notes round each side (2.30 + 2.39 = 4.69).
    assert buy.exchange_txn + sell.exchange_txn == pytest.approx(4.69)


FUT, OPT = "NIFTY26APRFUT", "NIFTY26APR22000CE"

F_AND_O_ROUND_TRIPS = [
    # Futures (NRML) on 6 Apr 2026, 75 @ 22000 = 16,50,000 and 75 @ 22100 = 16,57,500.
    # Buy:  brokerage 495 -> 20; exchange 0.00183% = 30.195 -> 30.20; SEBI 1.65;
    #       stamp 0.002% = 33.00; GST 18% x 51.85 = 9.333 -> 9.33.        total 94.18
    # Sell: brokerage 20; STT 0.05% (Budget 2026) = 828.75 -> 829; exchange 30.33225 ->
    #       30.33; SEBI 1.6575 -> 1.66; GST 18% x 51.99 = 9.3582 -> 9.36.   total 890.35
    pytest.param(FUT, (75, 22000.0), (75, 22100.0),
                 Charges(brokerage=20.0, exchange_txn=30.20, sebi=1.65, stamp_duty=33.0,
                         gst=9.33),
                 Charges(brokerage=20.0, stt=829.0, exchange_txn=30.33, sebi=1.66, gst=9.36),
                 (94.18, 890.35), id="futures"),
    # Options on premium, 75 @ 150 = 11,250 and 75 @ 180 = 13,500.
    # Buy:  flat 20; exchange 0.03553% = 3.997125 -> 4.00; SEBI 0.01125 -> 0.01;
    #       stamp 0.003% = 0.3375 -> 0.34; GST 18% x 24.01 = 4.3218 -> 4.32.  28.67
    # Sell: flat 20; STT 0.15% (Budget 2026) = 20.25 -> 20; exchange 4.79655 -> 4.80;
    #       SEBI 0.0135 -> 0.01; GST 18% x 24.81 = 4.4658 -> 4.47.             49.28
    pytest.param(OPT, (75, 150.0), (75, 180.0),
                 Charges(brokerage=20.0, exchange_txn=4.0, sebi=0.01, stamp_duty=0.34,
                         gst=4.32),
                 Charges(brokerage=20.0, stt=20.0, exchange_txn=4.80, sebi=0.01, gst=4.47),
                 (28.67, 49.28), id="options"),
]


@pytest.mark.parametrize(("symbol", "bought", "sold", "buy", "sell", "totals"),
                         F_AND_O_ROUND_TRIPS)
def test_f_and_o_round_trip_by_hand(symbol: str, bought: tuple[int, float],
                                    sold: tuple[int, float], buy: Charges, sell: Charges,
                                    totals: tuple[float, float]) -> None:
    got_buy = calc.for_fill(BUY, *bought, product=NRML, symbol=symbol, day=MON_6_APR_2026)
    got_sell = calc.for_fill(SELL, *sold, product=NRML, symbol=symbol, day=MON_6_APR_2026)
    assert (got_buy, got_sell) == (buy, sell)
    assert (got_buy.total, got_sell.total) == totals


@pytest.mark.parametrize(("symbol", "sold", "stt"), [
    (FUT, (75, 22100.0), 332.0),  # 0.02% of 16,57,500 = 331.50 -> 332 (x.50 rounds up)
    (OPT, (75, 180.0), 14.0),     # 0.1% of 13,500 = 13.50 -> 14
])
def test_f_and_o_stt_before_1_april_2026(symbol: str, sold: tuple[int, float],
                                         stt: float) -> None:
    assert calc.for_fill(SELL, *sold, product=NRML, symbol=symbol,
                         day=TUE_31_MAR_2026).stt == stt


# ---- boundaries -------------------------------------------------------------------------


@pytest.mark.parametrize(("turnover", "brokerage"), [
    (66_600, 19.98),   # 0.03% below the cap
    (66_650, 20.0),    # 19.995 -> 20.00 (half up) = the cap
    (66_700, 20.0),    # 20.01 -> capped
    (1_000_000, 20.0),
])
def test_brokerage_cap_against_the_rate(turnover: int, brokerage: float) -> None:
    assert calc.for_order(BUY, turnover).brokerage == brokerage
    assert calc.for_order(BUY, turnover, product=CNC, symbol="INFY").brokerage == 0.0
    assert calc.for_order(BUY, turnover, symbol="NIFTY26APR22000CE").brokerage == 20.0


@pytest.mark.parametrize(("turnover", "stt"), [
    (201_960, 50.0),   # 50.49 -> 50
    (202_000, 51.0),   # 50.50 -> 51 (half up, as Zerodha's support page states)
    (1_999, 0.0),      # 0.49975 -> 0
    (2_000, 1.0),      # 0.50 -> 1
])
def test_stt_rounds_to_the_rupee_half_up(turnover: int, stt: float) -> None:
    assert calc.for_order(SELL, turnover).stt == stt


def note_fill(notes: ContractNotes, symbol: str = "RELIANCE", *, product: Product = MIS,
              side: Side = SELL, d: int = MON_6_APR_2026, account: str = "momo",
              quantity: int = 20, price: float = 101.0) -> Charges:
    return notes.charge(account=account, day=d, symbol=symbol, product=product, side=side,
                        quantity=quantity, price=price)


def test_stt_is_rounded_once_per_contract_note_bucket() -> None:
    # Two MIS sells of RELIANCE, 20 @ 101 = 2,020 each: STT 0.505 each.
    notes = ContractNotes()
    a, b = note_fill(notes), note_fill(notes)
    # On one note: 4,040 x 0.025% = 1.01 -> 1 (the first fill's 0.505 -> 1, then 0).
    assert (a.stt, b.stt) == (1.0, 0.0)
    # Separate notes (another day, another strategy's book) pay 1 each.
    assert note_fill(notes, d=MON_6_APR_2026 + 1).stt == 1.0
    assert note_fill(notes, account="other").stt == 1.0
    # Other symbols, segments and sides are other buckets.
    assert len(notes) == 3
    note_fill(notes, product=CNC, quantity=1)
    note_fill(notes, "INFY", quantity=1)
    note_fill(notes, side=BUY, quantity=1)
    assert len(notes) == 6
    assert notes.prune(MON_6_APR_2026 + 1) == 5 and len(notes) == 1


def test_dp_charge_once_per_scrip_per_day_on_delivery_sells_only() -> None:
    notes = ContractNotes()

    def sell(d: int, symbol: str, product: Product) -> float:
        return note_fill(notes, symbol, product=product, d=d, quantity=10, price=100.0).dp

    assert sell(MON_6_APR_2026, "INFY", CNC) == 15.34
    assert sell(MON_6_APR_2026, "INFY", CNC) == 0.0      # same scrip, same day
    assert sell(MON_6_APR_2026, "TCS", CNC) == 15.34     # another scrip
    assert sell(MON_6_APR_2026 + 1, "INFY", CNC) == 15.34  # another day
    assert sell(MON_6_APR_2026, "SBIN", MIS) == 0.0      # intraday: nothing leaves demat
    assert note_fill(notes, "ITC", product=CNC, side=BUY).dp == 0.0


def test_options_flat_brokerage_is_per_order_across_partial_fills() -> None:
    kw = {"product": NRML, "symbol": "BANKNIFTY26APR50000PE"}
    first = calc.for_fill(BUY, 30, 200.0, **kw)  # type: ignore[arg-type]
    second = calc.for_fill(BUY, 45, 200.0, prior_turnover=6_000, **kw)  # type: ignore[arg-type]
    assert (first.brokerage, second.brokerage) == (20.0, 0.0)


def test_partial_fills_sum_to_the_whole_order() -> None:
    # Sell 100 @ 1000 in parts 30/40/30: brokerage 9.00, 11.00 (cum 21.00 capped 20),
    # 0.00; STT on the cumulative 30,000/70,000/1,00,000: 7.50 -> 8, 17.50 -> 18 (10),
    # 25 (7); the whole order: brokerage 20, STT 25.
    parts = [(30, 0), (40, 30_000), (30, 70_000)]
    fills = [calc.for_fill(SELL, q, 1000.0, prior_turnover=p) for q, p in parts]
    assert [f.brokerage for f in fills] == [9.0, 11.0, 0.0]
    assert [f.stt for f in fills] == [8.0, 10.0, 7.0]
    assert total(*fills) == calc.for_order(SELL, 100_000).total


# ---- segments and configuration ------------------------------------------------------------


@pytest.mark.parametrize(("product", "symbol", "segment"), [
    (MIS, "RELIANCE", Segment.EQUITY_INTRADAY),   # ends in CE but is an equity
    (CNC, "RELIANCE", Segment.EQUITY_DELIVERY),
    (NRML, "INFY", Segment.EQUITY_DELIVERY),
    (MIS, "NIFTY25JUNFUT", Segment.FUTURES),
    (NRML, "NFO:NIFTY25JUNFUT", Segment.FUTURES),
    (NRML, "NIFTY25JUN24000CE", Segment.OPTIONS),
    (MIS, "NIFTY2560524000PE", Segment.OPTIONS),  # weekly: YY M DD strike
    (NRML, "BANKNIFTY25JUN50000.5PE", Segment.OPTIONS),
])
def test_segment_from_the_product_and_symbol(product: Product, symbol: str,
                                             segment: Segment) -> None:
    assert segment_from_symbol(product, symbol) is segment


def test_segment_resolver_is_pluggable() -> None:
    lookup = {"XYZ": Segment.FUTURES}
    c = ChargeCalculator(segment_of=lambda p, s: lookup.get(s, segment_from_symbol(p, s)))
    assert c.for_order(SELL, 100_000, symbol="XYZ", day=MON_6_APR_2026).stt == 50.0


def test_schedule_versions_and_validation() -> None:
    assert ZERODHA_NSE.rates(Segment.FUTURES).stt_sell_rate == Decimal("0.0005")
    assert ZERODHA_NSE.rates(Segment.FUTURES, date(2025, 1, 1)).stt_sell_rate == \
        Decimal("0.0002")
    assert ZERODHA_NSE.rates(Segment.FUTURES, date(2020, 1, 1)).stt_sell_rate == \
        Decimal("0.0002")  # before the first version: the first
    one = (ChargeRates(),)
    with pytest.raises(ValidationError, match="increasing"):
        ChargeSchedule(intraday=one + one, delivery=one, futures=one, options=one)
    with pytest.raises(ValidationError, match="at least one"):
        ChargeSchedule(intraday=(), delivery=one, futures=one, options=one)
    with pytest.raises(ValidationError):
        ChargeRates(stt_sell_rate=Decimal("-0.1"))
    rates = ChargeRates()
    with pytest.raises(ValidationError):
        rates.brokerage_cap = Decimal(0)  # type: ignore[misc]
    zero = ChargeCalculator(ChargeRates(brokerage_rate=Decimal(0)))
    assert zero.for_fill(BUY, 100, 1000.0).gst == 0.57  # 18% x (3.07 + 0.10) = 0.5706


def test_bad_amounts_are_refused() -> None:
    assert turnover_of(3, 1000.05) == Decimal("3000.15")
    with pytest.raises(ValueError, match="negative"):
        turnover_of(-1, 10.0)
    with pytest.raises(ValueError, match="finite"):
        calc.for_order(BUY, float("nan"))
    with pytest.raises(ValueError, match="cannot be smaller"):
        calc.for_fill(SELL, 1, 10.0, prior_turnover=100, note_turnover=50)


# ---- an independent oracle ------------------------------------------------------------------
#
# Written differently on purpose: rates as fractions of the published "per crore"/percent
# figures, whole contract notes summed at the end (not fill by fill), rounding by integer
# arithmetic on paise.

_CRORE = 10**7
_ORACLE = {  # segment: (brokerage%, cap, flat, stt buy, stt sell, exchange, stamp, dp)
    Segment.EQUITY_INTRADAY: (Fraction(3, 10_000), 20, False, 0, Fraction(25, 100_000),
                              Fraction(297 + 10, 10**7), Fraction(300, _CRORE), 0),
    Segment.EQUITY_DELIVERY: (0, 20, False, Fraction(1, 1000), Fraction(1, 1000),
                              Fraction(297 + 10, 10**7), Fraction(1500, _CRORE), 13),
    Segment.FUTURES: (Fraction(3, 10_000), 20, False, 0, Fraction(5, 10_000),
                      Fraction(173 + 10, 10**7), Fraction(200, _CRORE), 0),
    Segment.OPTIONS: (0, 20, True, 0, Fraction(15, 10_000),
                      Fraction(3503 + 50, 10**7), Fraction(300, _CRORE), 0),
}


def _round(x: Fraction, unit: Fraction) -> Fraction:
    """Half up to a multiple of ``unit`` (x >= 0)."""
    return (x / unit + Fraction(1, 2)).__floor__() * unit


_P = Fraction(1, 100)


def _oracle(segment: Segment, orders: list[tuple[Side, list[tuple[int, Fraction]]]]) -> Fraction:
    bro, cap, flat, stt_b, stt_s, exch, stamp, dp = _ORACLE[segment]
    cost = Fraction(0)
    note = {BUY: Fraction(0), SELL: Fraction(0)}
    for side, fills in orders:
        t = sum((q * p for q, p in fills), Fraction(0))
        note[side] += t
        b = Fraction(cap) if flat else min(_round(t * bro, _P), Fraction(cap))
        e = _round(t * exch, _P)
        s = _round(t * Fraction(10, _CRORE), _P)
        cost += b + e + s + _round((b + e + s) * Fraction(18, 100), _P)
        if side is BUY:
            cost += _round(t * stamp, _P)
    cost += _round(note[BUY] * stt_b, Fraction(1)) + _round(note[SELL] * stt_s, Fraction(1))
    if dp and note[SELL]:
        cost += _round(Fraction(dp) * Fraction(118, 100), _P)
    return cost


_SYMBOL = {Segment.EQUITY_INTRADAY: (MIS, "SBIN"), Segment.EQUITY_DELIVERY: (CNC, "SBIN"),
           Segment.FUTURES: (NRML, "SBIN26APRFUT"), Segment.OPTIONS: (NRML, "SBIN26APR800CE")}
_orders = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]),
              st.lists(st.tuples(st.integers(1, 3_000), st.integers(1, 400_000)),
                       min_size=1, max_size=4)),
    min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Segment)), _orders)
def test_fills_booked_one_by_one_equal_the_oracle_contract_note(
    segment: Segment, orders: list[tuple[Side, list[tuple[int, int]]]]
) -> None:
    """Hypothesis trades (orders of partial fills on one day, ticks of ₹0.05) booked fill
    by fill through ContractNotes cost exactly what the oracle's contract note says."""
    product, symbol = _SYMBOL[segment]
    notes = ContractNotes()
    booked = Decimal(0)
    oracle_orders = []
    for side, fills in orders:
        prior = Decimal(0)
        ofills = []
        for qty, ticks in fills:
            price = Decimal(ticks) * Decimal("0.05")
            c = notes.charge(account="momo", day=MON_6_APR_2026, symbol=symbol,
                             product=product, side=side, quantity=qty, price=price,
                             prior_turnover=prior)
            parts = (c.brokerage, c.stt, c.exchange_txn, c.sebi, c.stamp_duty, c.gst, c.dp)
            assert all(p >= 0 for p in parts)
            booked += sum(Decimal(repr(p)) for p in parts)
            prior += qty * price
            ofills.append((qty, Fraction(ticks, 20)))
        oracle_orders.append((side, ofills))
    assert Fraction(booked) == _oracle(segment, oracle_orders)
