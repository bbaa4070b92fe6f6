"""Zerodha MIS charges against figures computed by hand from the published schedule."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from pydantic import ValidationError

from alphaspt.core.events import Charges, Side
from alphaspt.portfolio.charges import ChargeCalculator, ChargeRates, turnover_of

calc = ChargeCalculator()


def test_buy_of_one_lakh_by_hand() -> None:
    # 100 x 1000 = 1,00,000 turnover, buy side.
    # brokerage 0.03% = 30.00 -> capped at 20.00; no STT on buys;
    # exchange 0.00297% = 2.97; SEBI 0.0001% = 0.10; stamp 0.003% = 3.00;
    # GST 18% x (20 + 2.97 + 0.10 = 23.07) = 4.1526 -> 4.15.
    c = calc.for_fill(Side.BUY, 100, 1000.0)
    assert c == Charges(
        brokerage=20.0, stt=0.0, exchange_txn=2.97, sebi=0.10, stamp_duty=3.0, gst=4.15
    )
    assert c.total == 30.22


def test_sell_of_one_lakh_one_thousand_by_hand() -> None:
    # 100 x 1010 = 1,01,000, sell side.
    # brokerage 30.30 -> 20.00; STT 0.025% = 25.25; exchange 2.9997 -> 3.00;
    # SEBI 0.101 -> 0.10; no stamp on sells; GST 18% x 23.10 = 4.158 -> 4.16.
    c = calc.for_fill(Side.SELL, 100, 1010.0)
    assert c == Charges(
        brokerage=20.0, stt=25.25, exchange_txn=3.0, sebi=0.10, stamp_duty=0.0, gst=4.16
    )
    assert c.total == 52.51


def test_small_order_below_the_cap_rounds_each_component_half_up() -> None:
    # 10 x 500 = 5,000: brokerage 1.50; exchange 0.1485 -> 0.15; SEBI 0.005 -> 0.01
    # (half up); stamp 0.15; GST 18% x 1.66 = 0.2988 -> 0.30.
    c = calc.for_fill(Side.BUY, 10, 500.0)
    assert c == Charges(
        brokerage=1.5, stt=0.0, exchange_txn=0.15, sebi=0.01, stamp_duty=0.15, gst=0.30
    )
    assert c.total == 2.11


def test_for_order_equals_a_single_fill() -> None:
    assert calc.for_order(Side.SELL, 101_000.0) == calc.for_fill(Side.SELL, 100, 1010.0)


def test_brokerage_cap_applies_to_the_order_cumulatively_across_partial_fills() -> None:
    # Sell 100 @ 1000 in three parts: 30 (9.00 brokerage), 40 (cum 70,000 -> 21.00,
    # capped 20.00, so 11.00 for this part), 30 (already capped: 0.00).
    first = calc.for_fill(Side.SELL, 30, 1000.0)
    second = calc.for_fill(Side.SELL, 40, 1000.0, prior_turnover=30_000.0)
    third = calc.for_fill(Side.SELL, 30, 1000.0, prior_turnover=70_000.0)
    assert [first.brokerage, second.brokerage, third.brokerage] == [9.0, 11.0, 0.0]
    whole = calc.for_order(Side.SELL, 100_000.0)
    assert round(first.total + second.total + third.total, 2) == whole.total
    # Each fill on its own would have paid 9 + 12 + 9 = 30 brokerage: the cap matters.
    separate = sum(calc.for_fill(Side.SELL, q, 1000.0).brokerage for q in (30, 40, 30))
    assert separate == 30.0


@pytest.mark.parametrize("seed", range(20))
def test_partial_fills_always_sum_to_the_whole_order(seed: int) -> None:
    rng = random.Random(seed)
    side = rng.choice([Side.BUY, Side.SELL])
    parts = [(rng.randint(1, 400), round(rng.randint(2000, 80000) * 0.05, 2)) for _ in range(5)]
    prior = Decimal(0)
    sums = dict.fromkeys(("brokerage", "stt", "exchange_txn", "sebi", "stamp_duty", "gst"),
                         Decimal(0))
    for qty, price in parts:
        c = calc.for_fill(side, qty, price, prior_turnover=prior)
        for k in sums:
            part = Decimal(repr(getattr(c, k)))
            assert part >= 0
            sums[k] += part
        prior += turnover_of(qty, price)
    whole = calc.for_order(side, prior)
    for k, v in sums.items():
        assert v == Decimal(repr(getattr(whole, k))), k


def test_turnover_is_exact_decimal() -> None:
    # 0.1 + 0.2-style float error must not leak into paise: 3 x 1000.05 = 3000.15.
    assert turnover_of(3, 1000.05) == Decimal("3000.15")
    with pytest.raises(ValueError, match="negative"):
        turnover_of(-1, 10.0)
    with pytest.raises(ValueError, match="finite"):
        calc.for_order(Side.BUY, float("nan"))


def test_rates_are_frozen_and_overridable() -> None:
    rates = ChargeRates()
    with pytest.raises(ValidationError):
        rates.brokerage_cap = Decimal(0)  # type: ignore[misc]
    zero_brokerage = ChargeCalculator(ChargeRates(brokerage_rate=Decimal(0)))
    c = zero_brokerage.for_fill(Side.BUY, 100, 1000.0)
    assert c.brokerage == 0.0
    assert c.gst == 0.55  # 18% x (2.97 + 0.10) = 0.5526
    with pytest.raises(ValidationError):
        ChargeRates(stt_sell_rate=Decimal("-0.1"))
