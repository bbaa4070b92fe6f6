"""Worked examples for the exchange's rules and the exact-money boundaries of the risk table."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from alphaspt.core.events import Product, RiskDecision, RiskReason, Side, Signal
from alphaspt.core.specs import RiskProfileSpec
from alphaspt.market import TradingCalendar, load_instruments
from alphaspt.market.calendar import ist_ns
from alphaspt.risk import RULES, RiskEngine, RiskEngineConfig
from tests.unit.risk.conftest import PROFILE, fill, limits, signal, tick

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
INSTRUMENTS = load_instruments(EXAMPLES / "instruments.csv")
SESSION = (time(9, 15), time(15, 30))
CALENDAR = TradingCalendar.from_table(
    {
        date(2026, 1, 23): SESSION,  # Friday
        date(2026, 1, 27): SESSION,  # Tuesday (24-25 weekend, 26 Republic Day)
    }
)
FRI = date(2026, 1, 23)
TUE = date(2026, 1, 27)
NOON = ist_ns(FRI, time(12))


def at(d: date, hh: int, mm: int = 0, ss: int = 0) -> int:
    return ist_ns(d, time(hh, mm, ss))


def engine(
    *,
    calendar: TradingCalendar | None = CALENDAR,
    instruments: bool = True,
    config: RiskEngineConfig | None = None,
    **prices: float,
) -> RiskEngine:
    e = RiskEngine(
        clock=lambda: 7,
        calendar=calendar,
        config=config,
        instruments=INSTRUMENTS if instruments else None,
    )
    for symbol, price in prices.items():
        e.on_tick(tick(symbol, price, ts=NOON))
    return e


def decide(
    e: RiskEngine, sig: Signal, lim: RiskProfileSpec | None = None, now: int = NOON
) -> RiskDecision:
    return e.evaluate(sig, PROFILE, lim or limits(), now)


def with_product(sig: Signal, product: Product) -> Signal:
    return msgspec.structs.replace(sig, product=product)


def test_rule_table_order() -> None:
    assert [r.__name__ for r in RULES] == [
        "_check_signal",
        "_check_kill_switch",
        "_check_paused",
        "_check_allowed_instrument",
        "_check_known_instrument",
        "_check_market_open",
        "_check_trading_window",
        "_check_product_cutoff",
        "_check_short_sell",
        "_check_lot_size",
        "_check_tick_size",
        "_check_order_quantity",
        "_check_order_value",
        "_check_circuit_limit",
        "_check_price_band",
        "_check_position",
        "_check_gross_exposure",
        "_check_daily_loss",
        "_check_rate_second",
        "_check_rate_minute",
        "_check_rate_day",
    ]


# -- calendar and session ---------------------------------------------------------------------


def test_market_closed_on_weekend_holiday_and_outside_the_session() -> None:
    e = engine(RELIANCE=1400.0)
    assert decide(e, signal(ref_price=1400.0), now=at(FRI, 9, 15)).approved
    for now, words in [
        (at(FRI, 9, 14, 59), "outside the session 09:15-15:30"),
        (at(FRI, 15, 30), "outside the session"),
        (at(date(2026, 1, 24), 11), "a weekend"),
        (at(date(2026, 1, 26), 11), "an exchange holiday"),
        (at(date(2027, 3, 2), 11), "beyond the trading calendar"),
    ]:
        d = decide(e, signal(ref_price=1400.0), now=now)
        assert d.reason is RiskReason.MARKET_CLOSED and words in d.message, (now, d.message)
    # risk-reducing orders meet the closed market too: nothing reaches a closed exchange
    e.on_fill(fill(Side.BUY, 10, 1400.0, ts=at(TUE, 10)))
    d = decide(e, signal(Side.SELL, 10, ref_price=1400.0), now=at(TUE, 15, 30))
    assert d.reason is RiskReason.MARKET_CLOSED


def test_no_calendar_no_market_rule() -> None:
    e = engine(calendar=None, RELIANCE=1400.0)
    lim = limits(tradingWindow={"start": "00:00", "end": "23:59:59"}, misCutoff="23:59:59")
    assert decide(e, signal(ref_price=1400.0), lim, now=at(date(2026, 1, 24), 11)).approved


def test_trading_window_stays_a_profile_restriction_inside_the_session() -> None:
    e = engine(RELIANCE=1400.0)
    lim = limits(tradingWindow={"start": "10:00", "end": "11:00"})
    assert (
        decide(e, signal(ref_price=1400.0), lim, now=at(FRI, 9, 30)).reason
        is RiskReason.OUTSIDE_TRADING_WINDOW
    )
    assert decide(e, signal(ref_price=1400.0), lim, now=at(FRI, 10, 30)).approved


# -- products ---------------------------------------------------------------------------------


def test_mis_cutoff_refuses_risk_increasing_and_allows_reducing() -> None:
    e = engine(RELIANCE=1400.0)
    e.on_fill(fill(Side.BUY, 10, 1400.0, ts=at(FRI, 11)))
    assert decide(e, signal(ref_price=1400.0), now=at(FRI, 15, 19, 59)).approved
    d = decide(e, signal(ref_price=1400.0), now=at(FRI, 15, 20))
    assert d.reason is RiskReason.PRODUCT_CUTOFF and "15:20" in d.message
    # 10 held + 10 pending: selling 20 reduces, 21 would flip short
    assert decide(e, signal(Side.SELL, 20, ref_price=1400.0), now=at(FRI, 15, 25)).approved
    # CNC and NRML have no cutoff
    cnc = with_product(signal(ref_price=1400.0), Product.CNC)
    assert decide(e, cnc, now=at(FRI, 15, 25)).approved
    lim = limits(misCutoff="15:10")
    assert (
        decide(e, signal(ref_price=1400.0), lim, now=at(FRI, 15, 10)).reason
        is RiskReason.PRODUCT_CUTOFF
    )


def test_once_the_cutoff_squared_off_even_a_reducing_mis_order_is_refused() -> None:
    e = engine(RELIANCE=1400.0)
    e.on_fill(fill(Side.BUY, 10, 1400.0, ts=at(FRI, 11)))
    sell = signal(Side.SELL, 10, ref_price=1400.0)
    d = e.evaluate(sell, PROFILE, limits(), at(FRI, 15, 25), squared_off=True)
    assert d.reason is RiskReason.PRODUCT_CUTOFF and "square-off" in d.message
    early = e.evaluate(signal(Side.SELL, 5, ref_price=1400.0), PROFILE, limits(),
                       at(FRI, 15, 19), squared_off=True)
    assert early.approved  # before the cut-off (a late signal): the rules as usual
    assert decide(e, signal(Side.SELL, 2, ref_price=1400.0), now=at(FRI, 15, 25)).approved
    cnc = with_product(signal(Side.SELL, 3, ref_price=1400.0), Product.CNC)
    assert e.evaluate(cnc, PROFILE, limits(), at(FRI, 15, 25), squared_off=True).approved


def test_cnc_no_short_sale_beyond_holdings() -> None:
    e = engine(RELIANCE=1400.0)
    sell = with_product(signal(Side.SELL, 1, ref_price=1400.0), Product.CNC)
    d = decide(e, sell)
    assert d.reason is RiskReason.SHORT_SELL and "holdings 0" in d.message
    e.on_fill(fill(Side.BUY, 10, 1400.0, ts=NOON))
    assert decide(e, with_product(signal(Side.SELL, 6, ref_price=1400.0), Product.CNC)).approved
    # 6 of the 10 are pending to sell: 4 more is the most
    assert (
        decide(e, with_product(signal(Side.SELL, 5, ref_price=1400.0), Product.CNC)).reason
        is RiskReason.SHORT_SELL
    )
    assert decide(e, with_product(signal(Side.SELL, 4, ref_price=1400.0), Product.CNC)).approved
    # MIS may sell short
    assert decide(e, signal(Side.SELL, 50, ref_price=1400.0)).approved


def test_cnc_holdings_carry_over_the_day_roll_and_pending_orders_do_not() -> None:
    e = engine(RELIANCE=1400.0)
    e.on_fill(fill(Side.BUY, 10, 1400.0, ts=NOON))
    assert decide(e, with_product(signal(Side.SELL, 10, ref_price=1400.0), Product.CNC)).approved
    assert e.state.pending
    tuesday = at(TUE, 10)
    e.on_tick(tick("RELIANCE", 1400.0, ts=tuesday))
    assert not e.state.pending  # day orders expired with the Friday close
    assert e.state.position("momentum-demo", "RELIANCE") == 10  # the holding stays
    sell = with_product(signal(Side.SELL, 10, ref_price=1400.0), Product.CNC)
    assert decide(e, sell, now=tuesday).approved


def test_product_must_fit_the_segment() -> None:
    e = engine(RELIANCE=1400.0, NIFTY26JANFUT=26000.0)
    nrml = with_product(signal(ref_price=1400.0), Product.NRML)
    assert decide(e, nrml).reason is RiskReason.INVALID_SIGNAL
    cnc = with_product(signal(Side.BUY, 65, symbol="NIFTY26JANFUT", ref_price=26000.0), Product.CNC)
    lim = limits(maxOrderValue=5e6, maxGrossExposure=5e7)
    assert decide(e, cnc, lim).reason is RiskReason.INVALID_SIGNAL
    fut = with_product(
        signal(Side.BUY, 65, symbol="NIFTY26JANFUT", ref_price=26000.0), Product.NRML
    )
    assert decide(e, fut, lim).approved


# -- instruments ------------------------------------------------------------------------------


def test_unknown_instrument_only_with_an_instruments_file() -> None:
    d = decide(engine(ZZUNKNOWN=100.0), signal(symbol="ZZUNKNOWN"))
    assert d.reason is RiskReason.UNKNOWN_INSTRUMENT
    assert decide(engine(instruments=False, ZZUNKNOWN=100.0), signal(symbol="ZZUNKNOWN")).approved


def test_tick_size_exact() -> None:
    e = engine(RELIANCE=1400.0, TATASTEEL=150.0)
    d = decide(e, signal(ref_price=1400.0, limit_price=1400.03))
    assert d.reason is RiskReason.TICK_SIZE and "0.05" in d.message
    assert decide(e, signal(ref_price=1400.0, limit_price=1400.05)).approved
    assert decide(e, signal(ref_price=1400.0, limit_price=1400.1)).approved  # 0.1 float
    # a stock under ₹250 trades in ₹0.01 steps
    assert decide(e, signal(symbol="TATASTEEL", ref_price=150.0, limit_price=150.01)).approved
    assert (
        decide(e, signal(symbol="TATASTEEL", ref_price=150.0, limit_price=150.015)).reason
        is RiskReason.TICK_SIZE
    )
    # a market order has no price to check
    assert decide(e, signal(ref_price=1400.03)).approved


def test_lot_size_of_futures() -> None:
    e = engine(NIFTY26JANFUT=26000.0)
    lim = limits(maxOrderValue=1e7, maxGrossExposure=1e8, maxPositionPerInstrument=1000)
    fut = with_product(signal(Side.BUY, 1, symbol="NIFTY26JANFUT", ref_price=26000.0), Product.NRML)
    d = decide(e, fut, lim)
    assert d.reason is RiskReason.LOT_SIZE and "lot size 65" in d.message
    for qty, ok in ((64, False), (65, True), (130, True), (131, False)):
        sig = with_product(
            signal(Side.BUY, qty, symbol="NIFTY26JANFUT", ref_price=26000.0), Product.NRML
        )
        assert decide(e, sig, lim).approved is ok, qty


def test_circuit_limit_around_the_previous_close() -> None:
    # RELIANCE: file last_price 1400, default equity band 20%: 1120.00 - 1680.00 inclusive
    e = engine(RELIANCE=1650.0)
    lim = limits(priceBandPercent=5)
    assert decide(e, signal(ref_price=1650.0, limit_price=1680.0), lim).approved
    d = decide(e, signal(ref_price=1650.0, limit_price=1680.05), lim)
    assert d.reason is RiskReason.CIRCUIT_LIMIT and "1120.00-1680.00" in d.message
    # next day the reference is the previous day's last price (1650): 1320.00 - 1980.00
    e.on_tick(tick("RELIANCE", 1900.0, ts=at(TUE, 9, 16)))
    assert e.state.day_open_prices["RELIANCE"] == 1650.0
    assert decide(e, signal(ref_price=1900.0, limit_price=1980.0), lim, at(TUE, 10)).approved
    assert (
        decide(e, signal(ref_price=1900.0, limit_price=1980.05), lim, at(TUE, 10)).reason
        is RiskReason.CIRCUIT_LIMIT
    )
    # futures have no fixed band
    f = engine(NIFTY26JANFUT=40000.0)
    fut = with_product(
        signal(Side.BUY, 65, symbol="NIFTY26JANFUT", ref_price=40000.0), Product.NRML
    )
    assert decide(f, fut, limits(maxOrderValue=1e7, maxGrossExposure=1e8)).approved


# -- exact money ------------------------------------------------------------------------------


def test_daily_loss_trips_at_exactly_minus_the_limit_from_float_pnl() -> None:
    e = engine(instruments=False, RELIANCE=5000.15)
    e.on_fill(fill(Side.BUY, 1, 5000.15, ts=NOON))
    e.on_fill(fill(Side.SELL, 1, 4000.15, ts=NOON))
    # The shared accounting core books this exactly (float arithmetic gave -999.9999999999995).
    assert e.state.daily_pnl("momentum-demo") == -1000.0
    assert 4000.15 - 5000.15 > -1000.0  # what float subtraction would have produced
    lim = limits(maxDailyLoss=1000)
    d = decide(e, signal(ref_price=5000.15), lim)
    assert d.reason is RiskReason.MAX_DAILY_LOSS and "-1000.00" in d.message
    e.state.realised["momentum-demo"] = -999.9999999999999
    assert decide(e, signal(ref_price=5000.15), lim).reason is RiskReason.MAX_DAILY_LOSS
    e.state.realised["momentum-demo"] = -999.99
    assert decide(e, signal(ref_price=5000.15), lim).approved


def test_order_value_equal_to_the_max_passes_exactly() -> None:
    e = engine(instruments=False, PENNY=0.1)
    lim = limits(maxOrderValue=0.3, priceBandPercent=20)
    assert 3 * 0.1 > 0.3  # the float product is over; in paise it is 30 == 30
    assert decide(e, signal(Side.BUY, 3, symbol="PENNY", ref_price=0.1), lim).approved
    d = decide(e, signal(Side.BUY, 4, symbol="PENNY", ref_price=0.1), lim)
    assert d.reason is RiskReason.MAX_ORDER_VALUE and "0.40" in d.message


def test_price_band_edge_exact() -> None:
    e = engine(instruments=False, RELIANCE=100.0)
    lim = limits(priceBandPercent=3)
    assert decide(e, signal(ref_price=103.0), lim).approved
    assert decide(e, signal(ref_price=97.0), lim).approved
    assert decide(e, signal(ref_price=103.01), lim).reason is RiskReason.PRICE_BAND


def test_gross_exposure_equal_to_the_max_passes() -> None:
    e = engine(instruments=False, A=0.1, B=0.2)
    lim = limits(maxGrossExposure=0.3, maxOrderValue=1, priceBandPercent=20)
    assert decide(e, signal(Side.BUY, 1, symbol="A", ref_price=0.1), lim).approved
    assert decide(
        e, signal(Side.BUY, 1, symbol="B", ref_price=0.2), lim
    ).approved  # 0.1 + 0.2 == 0.3
    assert (
        decide(e, signal(Side.BUY, 1, symbol="A", ref_price=0.1), lim).reason
        is RiskReason.MAX_GROSS_EXPOSURE
    )


@given(
    price_paise=st.integers(1, 10_000_000),
    qty=st.integers(1, 1000),
    limit_paise=st.integers(1, 10**9),
)
def test_order_value_rule_is_exact_in_paise(price_paise: int, qty: int, limit_paise: int) -> None:
    price = price_paise / 100
    e = engine(instruments=False, calendar=None, X=price)
    lim = limits(
        maxOrderValue=limit_paise / 100,
        maxOrderQuantity=1000,
        maxPositionPerInstrument=1000,
        maxGrossExposure=1e12,
        tradingWindow={"start": "00:00", "end": "23:59:59"},
        misCutoff="23:59:59",
    )
    d = decide(e, signal(Side.BUY, qty, symbol="X", ref_price=price), lim)
    assert (d.reason is not RiskReason.MAX_ORDER_VALUE) == (qty * price_paise <= limit_paise)


# -- account order caps -----------------------------------------------------------------------


def test_default_account_caps_are_kites() -> None:
    c = RiskEngineConfig()
    assert (
        c.account_max_orders_per_second,
        c.account_max_orders_per_minute,
        c.account_max_orders_per_day,
    ) == (10, 400, 5000)


def test_account_day_cap_across_strategies_resets_next_day() -> None:
    e = engine(
        instruments=False, config=RiskEngineConfig(account_max_orders_per_day=3), RELIANCE=1400.0
    )
    lim = limits(maxOrdersPerSecond=10)
    for i, strategy in enumerate(("a", "b", "c")):
        assert decide(
            e,
            signal(Side.BUY, 1, strategy=strategy, ref_price=1400.0),
            lim,
            NOON + i * 2_000_000_000,
        ).approved
    d = decide(
        e, signal(Side.BUY, 1, strategy="d", ref_price=1400.0), lim, NOON + 3 * 60_000_000_000
    )
    assert d.reason is RiskReason.ORDER_RATE_DAY and "3/day" in d.message
    assert decide(e, signal(Side.BUY, 1, strategy="d", ref_price=1400.0), lim, at(TUE, 10)).approved


def test_account_minute_cap_across_strategies() -> None:
    e = engine(
        instruments=False, config=RiskEngineConfig(account_max_orders_per_minute=2), RELIANCE=1400.0
    )
    assert decide(e, signal(Side.BUY, 1, strategy="a", ref_price=1400.0)).approved
    assert decide(e, signal(Side.BUY, 1, strategy="b", ref_price=1400.0), now=NOON + 1).approved
    d = decide(e, signal(Side.BUY, 1, strategy="c", ref_price=1400.0), now=NOON + 2)
    assert d.reason is RiskReason.ORDER_RATE_MINUTE and "2/min" in d.message


def test_day_count_and_previous_close_survive_a_restore() -> None:
    e = engine(instruments=False, RELIANCE=1400.0)
    assert decide(e, signal(Side.BUY, 1, ref_price=1400.0)).approved
    e.on_tick(tick("RELIANCE", 1410.0, ts=at(TUE, 9, 16)))
    assert decide(e, signal(Side.BUY, 1, ref_price=1410.0), now=at(TUE, 9, 17)).approved
    st = e.state
    restored = type(st).from_items({k: v for k in st.state_keys()
                                    if (v := st.export(k)) is not None})
    assert restored.account_orders_today == 1 == st.account_orders_today
    assert restored.day_open_prices == {"RELIANCE": 1400.0}
    assert "close/RELIANCE" in st.state_keys()
