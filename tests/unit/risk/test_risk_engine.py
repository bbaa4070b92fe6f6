"""Every rule of the risk engine, its boundaries and the order the rules apply in."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import msgspec
import pytest

from alphaspt.core.events import (
    Command,
    Control,
    Order,
    OrderRejected,
    OrderType,
    RiskDecision,
    RiskReason,
    Side,
    Signal,
)
from alphaspt.core.specs import RiskProfileSpec
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.risk import RiskEngine, RiskEngineConfig, check_limits
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

DEFAULT = limits()


def decide(
    engine: RiskEngine,
    sig: Signal,
    lim: RiskProfileSpec = DEFAULT,
    now: int = T0,
    profile: str = PROFILE,
) -> RiskDecision:
    return engine.evaluate(sig, profile, lim, now)


def ist(h: int, m: int, s: int = 0) -> int:
    """2024-06-03 at h:m:s IST, in epoch ns."""
    return int(datetime(2024, 6, 3, h, m, s, tzinfo=UTC).timestamp() - 19800) * SECOND


# -- approval ------------------------------------------------------------------------------


def test_approval_carries_the_signal_and_counts_as_pending() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    sig = signal(Side.BUY, 10)
    d = decide(engine, sig)
    assert (d.approved, d.reason, d.message) == (True, RiskReason.OK, "approved")
    assert d.event_id == sig.event_id
    assert d.signal == sig
    assert (d.risk_profile, d.exchange_ts, d.ingest_ts) == (PROFILE, T0, 7)
    assert engine.state.pending_quantity("momentum-demo", "RELIANCE") == 10


@pytest.mark.parametrize(
    ("sig", "fragment"),
    [
        (signal(quantity=0), "quantity must be at least 1, got 0"),
        (signal(ref_price=0.0), "ref_price must be positive"),
        (signal(ref_price=math.nan), "ref_price must be positive"),
        (msgspec.structs.replace(signal(), order_type=OrderType.LIMIT), "positive limit_price"),
        (signal(limit_price=-1.0), "positive limit_price"),
    ],
)
def test_malformed_signals_are_invalid(sig: Signal, fragment: str) -> None:
    d = decide(engine_with_prices(RELIANCE=100.0), sig)
    assert (d.approved, d.reason) == (False, RiskReason.INVALID_SIGNAL)
    assert fragment in d.message


# -- kill switch and pause -----------------------------------------------------------------


def kill(target: str, value: bool = True, kind: str = "RiskProfile") -> Control:
    return Control(
        event_id="c",
        exchange_ts=T0,
        command=Command.KILL_SWITCH,
        target_kind=kind,
        target=target,
        value=value,
    )


def test_global_kill_switch_engages_and_releases() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    assert engine.apply_control(kill("*", kind="*")) is True
    assert engine.apply_control(kill("*", kind="*")) is False  # already engaged
    d = decide(engine, signal())
    assert (d.reason, d.message) == (RiskReason.KILL_SWITCH, "global kill switch engaged")
    assert engine.apply_control(kill("*", value=False, kind="*")) is True
    assert decide(engine, signal()).approved


def test_profile_kill_switch_only_stops_that_profile() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    engine.apply_control(kill(PROFILE))
    d = decide(engine, signal())
    assert d.reason is RiskReason.KILL_SWITCH
    assert "risk profile default" in d.message
    assert decide(engine, signal(), profile="aggressive").approved
    engine.apply_control(kill(PROFILE, value=False))
    assert decide(engine, signal()).approved


def test_spec_kill_switch_cannot_be_released_by_a_command() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    engine.apply_control(kill(PROFILE, value=False))
    d = decide(engine, signal(), limits(killSwitch=True))
    assert (d.reason, d.message) == (
        RiskReason.KILL_SWITCH,
        "kill switch engaged in risk profile default (spec)",
    )


def test_kill_switch_refuses_risk_increasing_orders_and_wins_over_pause() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    engine.on_fill(fill(Side.BUY, 100, 100.0))
    engine.pause("momentum-demo")
    engine.set_kill_switch(None, True)
    assert decide(engine, signal(Side.BUY, 10)).reason is RiskReason.KILL_SWITCH
    assert decide(engine, signal(Side.SELL, 101)).reason is RiskReason.KILL_SWITCH  # flips
    # a risk-reducing order passes the kill switch (and then meets the pause)
    assert decide(engine, signal(Side.SELL, 10)).reason is RiskReason.PAUSED


def test_kill_switch_allows_risk_reducing_orders() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    engine.on_fill(fill(Side.BUY, 100, 100.0))
    engine.set_kill_switch("default", True)
    assert decide(engine, signal(Side.SELL, 60)).approved
    # 60 of the 100 are pending to sell: 40 more reduce, 41 would flip
    assert decide(engine, signal(Side.SELL, 41)).reason is RiskReason.KILL_SWITCH
    assert decide(engine, signal(Side.SELL, 40)).approved
    assert decide(engine, signal(Side.BUY, 1), limits(killSwitch=True)).reason \
        is RiskReason.KILL_SWITCH


def test_pause_and_resume_one_strategy_or_all() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    pause = Control(
        event_id="p",
        exchange_ts=T0,
        command=Command.PAUSE,
        target_kind="TradingStrategy",
        target="momentum-demo",
    )
    assert engine.apply_control(pause) is True
    d = decide(engine, signal())
    assert (d.reason, d.message) == (RiskReason.PAUSED, "strategy momentum-demo is paused")
    assert decide(engine, signal(strategy="other")).approved
    engine.apply_control(msgspec.structs.replace(pause, command=Command.RESUME))
    assert decide(engine, signal()).approved
    engine.pause("*")
    assert decide(engine, signal(strategy="other")).reason is RiskReason.PAUSED
    assert engine.resume("*") is True
    assert decide(engine, signal(strategy="other")).approved


def test_commands_for_other_kinds_change_nothing() -> None:
    engine = RiskEngine()
    assert engine.apply_control(kill("momentum-demo", kind="TradingStrategy")) is False
    cfg = Control(event_id="x", exchange_ts=T0, command=Command.CONFIG_CHANGED)
    assert engine.apply_control(cfg) is False
    assert engine.state.kill_switch_profiles == []


# -- instruments and trading window ---------------------------------------------------------


def test_allowed_instruments() -> None:
    engine = engine_with_prices(RELIANCE=100.0, TCS=100.0)
    lim = limits(allowedInstruments=["TCS", "INFY"])
    d = decide(engine, signal(), lim)
    assert (d.reason, d.message) == (
        RiskReason.INSTRUMENT_NOT_ALLOWED,
        "RELIANCE is not in allowedInstruments (TCS, INFY)",
    )
    assert decide(engine, signal(symbol="TCS"), lim).approved


@pytest.mark.parametrize(
    ("now", "approved"),
    [
        (ist(9, 14, 59) + SECOND - 1, False),  # 09:14:59.999999999
        (ist(9, 15), True),  # start is inclusive
        (ist(15, 29, 59) + SECOND - 1, True),
        (ist(15, 30), False),  # end is exclusive
        (ist(3, 0), False),
    ],
)
def test_ist_trading_window_edges(now: int, approved: bool) -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    d = decide(engine, signal(), limits(misCutoff="15:30"), now=now)
    assert d.approved is approved
    if not approved:
        assert d.reason is RiskReason.OUTSIDE_TRADING_WINDOW
        assert "Asia/Kolkata is outside the trading window 09:15-15:30" in d.message


def test_trading_window_in_another_timezone() -> None:
    lim = limits(tradingWindow={"start": "04:00", "end": "05:00", "timezone": "UTC"})
    engine = engine_with_prices(RELIANCE=100.0)
    assert decide(engine, signal(), lim, now=T0).approved  # 04:30 UTC
    d = decide(engine, signal(), lim, now=T0 + 3600 * SECOND)
    assert d.reason is RiskReason.OUTSIDE_TRADING_WINDOW


def test_unknown_timezone_refuses_to_trade() -> None:
    lim = limits(tradingWindow={"timezone": "Mars/Olympus_Mons"})
    with pytest.raises(InvalidConfiguration, match="Mars/Olympus_Mons"):
        check_limits(lim)
    check_limits(DEFAULT)
    d = decide(engine_with_prices(RELIANCE=100.0), signal(), lim)
    assert d.reason is RiskReason.OUTSIDE_TRADING_WINDOW
    assert "unknown" in d.message


# -- per-order limits ------------------------------------------------------------------------


def test_max_order_quantity_boundary() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    assert decide(engine, signal(quantity=1000)).approved
    d = decide(engine, signal(quantity=1001))
    assert (d.reason, d.message) == (
        RiskReason.MAX_ORDER_QUANTITY,
        "quantity 1001 exceeds maxOrderQuantity 1000",
    )


def test_max_order_value_uses_the_last_traded_price_for_market_orders() -> None:
    at_limit = engine_with_prices(RELIANCE=500.0)
    assert decide(at_limit, signal(quantity=1000, ref_price=500.0)).approved  # 500000.00
    over = engine_with_prices(RELIANCE=500.01)
    d = decide(over, signal(quantity=1000, ref_price=500.0))
    assert (d.reason, d.message) == (
        RiskReason.MAX_ORDER_VALUE,
        "order value 500010.00 (1000 x 500.01) exceeds maxOrderValue 500000.00",
    )


def test_max_order_value_uses_the_limit_price_of_limit_orders() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    lim = limits(maxOrderValue=100_000)
    assert decide(engine, signal(quantity=1000, limit_price=100.0), lim).approved
    d = decide(engine, signal(quantity=1000, limit_price=102.0), lim)
    assert d.reason is RiskReason.MAX_ORDER_VALUE


def test_order_value_at_the_limit_survives_float_rounding() -> None:
    engine = engine_with_prices(PENNY=0.1)
    assert 3 * 0.1 > 0.3  # 0.30000000000000004
    d = decide(engine, signal(quantity=3, symbol="PENNY", ref_price=0.1), limits(maxOrderValue=0.3))
    assert d.approved


def test_no_last_traded_price_means_no_reference_price() -> None:
    engine = RiskEngine()
    d = decide(engine, signal())
    assert (d.reason, d.message) == (
        RiskReason.NO_REFERENCE_PRICE,
        "no last traded price for RELIANCE yet",
    )
    # a limit order passes the value rule on its own price but still needs an LTP for the band
    assert decide(engine, signal(limit_price=100.0)).reason is RiskReason.NO_REFERENCE_PRICE


@pytest.mark.parametrize(
    ("limit_price", "ref_price", "approved"),
    [
        (105.0, 100.0, True),
        (105.01, 100.0, False),
        (95.0, 100.0, True),
        (94.99, 100.0, False),
        (None, 95.0, True),  # market orders: the strategy's reference price
        (None, 94.99, False),
        (None, 105.01, False),
    ],
)
def test_price_band_around_ltp(limit_price: float | None, ref_price: float, approved: bool) -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    d = decide(engine, signal(limit_price=limit_price, ref_price=ref_price))
    assert d.approved is approved
    if not approved:
        assert d.reason is RiskReason.PRICE_BAND
        assert "% from last traded price 100.00, beyond priceBandPercent 5" in d.message


def test_price_band_message_has_the_numbers() -> None:
    d = decide(engine_with_prices(RELIANCE=100.0), signal(limit_price=106.0))
    assert d.message == (
        "price 106.00 is 6.00% from last traded price 100.00, beyond priceBandPercent 5"
    )


# -- position, exposure, loss ---------------------------------------------------------------


def test_max_position_counts_fills_and_pending_orders() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    lim = limits(maxPositionPerInstrument=100)
    engine.on_fill(fill(Side.BUY, 60, 100.0))
    assert decide(engine, signal(quantity=40), lim).approved  # exactly 100, 40 pending
    d = decide(engine, signal(quantity=1), lim)
    assert (d.reason, d.message) == (
        RiskReason.MAX_POSITION,
        "position after order 101 exceeds maxPositionPerInstrument 100 "
        "(position 60, pending 40, order +1)",
    )
    assert decide(engine, signal(Side.SELL, 200), lim).approved  # to exactly -100
    assert decide(engine, signal(Side.SELL, 1), lim).reason is RiskReason.MAX_POSITION


def test_position_above_a_lowered_limit_can_only_be_reduced() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    engine.on_fill(fill(Side.BUY, 150, 100.0))
    lim = limits(maxPositionPerInstrument=100)
    assert decide(engine, signal(Side.BUY, 1), lim).reason is RiskReason.MAX_POSITION
    # a flip to -150 is not a reduction
    assert decide(engine, signal(Side.SELL, 300), lim).reason is RiskReason.MAX_POSITION
    assert decide(engine, signal(Side.SELL, 20), lim).approved


def test_positions_are_per_strategy() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    lim = limits(maxPositionPerInstrument=100)
    engine.on_fill(fill(Side.BUY, 100, 100.0, strategy="other"))
    assert decide(engine, signal(quantity=100), lim).approved


def test_max_gross_exposure_boundary_with_pending() -> None:
    engine = engine_with_prices(A=100.0, B=100.0)
    lim = limits(
        maxGrossExposure=1_000_000,
        maxPositionPerInstrument=100_000,
        maxOrderQuantity=100_000,
        maxOrderValue=1e9,
    )
    engine.on_fill(fill(Side.BUY, 5000, 100.0, symbol="A"))
    assert decide(engine, signal(quantity=5000, symbol="B"), lim).approved  # exactly 1,000,000
    d = decide(engine, signal(quantity=1, symbol="B"), lim)
    assert (d.reason, d.message) == (
        RiskReason.MAX_GROSS_EXPOSURE,
        "gross exposure after order 1000100.00 exceeds maxGrossExposure 1000000.00",
    )
    # shorts count as exposure too: B +5000 pending -> -5001
    assert decide(engine, signal(Side.SELL, 10_001, symbol="B"), lim).reason is (
        RiskReason.MAX_GROSS_EXPOSURE
    )
    assert decide(engine, signal(Side.SELL, 100, symbol="A"), lim).approved  # reducing


def test_daily_loss_with_unrealised_pnl_and_reducing_orders() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    lim = limits(maxOrderQuantity=5000)
    engine.on_fill(fill(Side.BUY, 1000, 100.0))
    engine.on_tick(tick("RELIANCE", 50.01))
    assert engine.state.daily_pnl("momentum-demo") == pytest.approx(-49_990)
    assert decide(engine, signal(quantity=1, ref_price=50.0), lim).approved

    engine.on_tick(tick("RELIANCE", 50.0))  # -50,000: exactly at the limit trips it
    d = decide(engine, signal(quantity=1, ref_price=50.0), lim)
    assert (d.reason, d.message) == (
        RiskReason.MAX_DAILY_LOSS,
        "daily P&L -50000.00 has reached maxDailyLoss 50000.00; "
        "only risk-reducing orders are accepted",
    )
    # position 1000 + 1 pending: a flip is not a reduction, closing out is
    assert decide(engine, signal(Side.SELL, 1002, ref_price=50.0), lim).reason is (
        RiskReason.MAX_DAILY_LOSS
    )
    assert decide(engine, signal(Side.SELL, 1001, ref_price=50.0), lim).approved
    assert (
        decide(engine, signal(Side.SELL, 1, ref_price=50.0), lim).reason
        is RiskReason.MAX_DAILY_LOSS
    )


def test_daily_loss_counts_realised_pnl_net_of_charges() -> None:
    engine = engine_with_prices(RELIANCE=80.0)
    engine.on_fill(fill(Side.BUY, 100, 100.0))
    engine.on_fill(fill(Side.SELL, 100, 80.0, charges=20.0))
    assert engine.state.daily_pnl("momentum-demo") == pytest.approx(-2020.0)
    sig = signal(ref_price=80.0)
    assert decide(engine, sig, limits(maxDailyLoss=2020)).reason is RiskReason.MAX_DAILY_LOSS
    assert decide(engine, signal(ref_price=80.0), limits(maxDailyLoss=2021)).approved


def test_a_new_ist_day_starts_from_the_previous_close() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    engine.on_fill(fill(Side.BUY, 1000, 100.0))
    engine.on_tick(tick("RELIANCE", 40.0))  # -60,000 today
    assert decide(engine, signal(ref_price=40.0)).reason is RiskReason.MAX_DAILY_LOSS
    next_day = T0 + 86_400 * SECOND
    engine.on_tick(tick("RELIANCE", 35.0, ts=next_day))  # overnight gap counts for the new day
    assert engine.state.daily_pnl("momentum-demo") == pytest.approx(-5000.0)
    assert decide(engine, signal(ref_price=35.0), now=next_day).approved


# -- order rates -----------------------------------------------------------------------------


def test_orders_per_second_sliding_window() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    for i in range(5):
        assert decide(engine, signal(quantity=1), now=T0 + i * SECOND // 10).approved
    d = decide(engine, signal(quantity=1), now=T0 + SECOND - 1)
    assert (d.reason, d.message) == (
        RiskReason.ORDER_RATE_SECOND,
        "5 orders in the last second reached maxOrdersPerSecond 5",
    )
    # the window is (now - 1 s, now]: the order at T0 has left it
    assert decide(engine, signal(quantity=1), now=T0 + SECOND).approved


def test_exchange_limit_of_ten_per_second_across_strategies() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    lim = limits(maxOrdersPerSecond=10)
    for i in range(10):
        assert decide(engine, signal(quantity=1, strategy=f"s{i % 2}"), lim).approved
    d = decide(engine, signal(quantity=1, strategy="s3"), lim)
    assert (d.reason, d.message) == (
        RiskReason.ORDER_RATE_SECOND,
        "10 account orders in the last second reached the exchange limit 10/s",
    )


def test_orders_per_minute_sliding_window() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    lim = limits(maxOrdersPerMinute=3)
    for i in range(3):
        assert decide(engine, signal(quantity=1), lim, now=T0 + i * SECOND).approved
    d = decide(engine, signal(quantity=1), lim, now=T0 + 60 * SECOND - 1)
    assert (d.reason, d.message) == (
        RiskReason.ORDER_RATE_MINUTE,
        "3 orders in the last minute reached maxOrdersPerMinute 3",
    )
    assert decide(engine, signal(quantity=1), lim, now=T0 + 60 * SECOND).approved


def test_account_minute_cap_is_optional() -> None:
    engine = RiskEngine(config=RiskEngineConfig(account_max_orders_per_minute=2))
    engine.on_tick(tick("RELIANCE", 100.0))
    assert decide(engine, signal(quantity=1, strategy="a")).approved
    assert decide(engine, signal(quantity=1, strategy="b"), now=T0 + 2 * SECOND).approved
    d = decide(engine, signal(quantity=1, strategy="c"), now=T0 + 4 * SECOND)
    assert d.reason is RiskReason.ORDER_RATE_MINUTE


def test_rejections_do_not_count_towards_rates() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    for _ in range(5):
        assert not decide(engine, signal(quantity=5000)).approved
    for _ in range(5):
        assert decide(engine, signal(quantity=1)).approved


# -- idempotence, pending release, rule order -----------------------------------------------


def test_redelivered_signal_gets_the_same_decision_and_counts_once() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    sig = signal(quantity=10)
    first = decide(engine, sig)
    again = decide(engine, sig, now=T0 + 1)
    assert (again.approved, again.reason, again.event_id) == (True, RiskReason.OK, first.event_id)
    assert engine.state.pending_quantity("momentum-demo", "RELIANCE") == 10
    assert engine.state.orders_within("momentum-demo", T0 + 1, SECOND) == 1
    refused = signal(quantity=5000)
    decide(engine, refused)
    assert decide(engine, refused, limits(maxOrderQuantity=10_000)).reason is (
        RiskReason.MAX_ORDER_QUANTITY
    )


def test_external_rejection_is_remembered() -> None:
    engine = RiskEngine()
    sig = signal()
    d = engine.reject(sig, RiskReason.UNKNOWN_STRATEGY, "no strategy momentum-demo")
    assert (d.approved, d.event_id, d.risk_profile) == (False, sig.event_id, None)
    assert decide(engine, sig).reason is RiskReason.UNKNOWN_STRATEGY


def test_fills_release_pending_quantity_partially_then_fully() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    sig = signal(quantity=100)
    decide(engine, sig)
    engine.on_fill(fill(Side.BUY, 60, 100.0, client_order_id=sig.event_id))
    st = engine.state
    assert (
        st.position("momentum-demo", "RELIANCE"),
        st.pending_quantity("momentum-demo", "RELIANCE"),
    ) == (60, 40)
    engine.on_fill(fill(Side.BUY, 40, 100.0, client_order_id=sig.event_id))
    assert st.pending == {}
    assert st.position("momentum-demo", "RELIANCE") == 100


def test_broker_rejection_releases_pending_by_client_id_or_signal_id() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    a, b = signal(quantity=10), signal(quantity=20)
    decide(engine, a)
    decide(engine, b)

    def rejected(client_order_id: str, signal_id: str) -> OrderRejected:
        return OrderRejected(
            event_id="r",
            exchange_ts=T0,
            client_order_id=client_order_id,
            signal_id=signal_id,
            strategy="momentum-demo",
            symbol="RELIANCE",
            reason="margin",
        )

    assert engine.on_order_rejected(rejected(a.event_id, a.event_id)) is True
    assert engine.on_order_rejected(rejected("broker-xyz", b.event_id)) is True
    assert engine.on_order_rejected(rejected("broker-xyz", b.event_id)) is False
    assert engine.state.pending_quantity("momentum-demo", "RELIANCE") == 0


def test_client_order_id_mapping_and_submitted_orders() -> None:
    engine = RiskEngine(client_order_id=lambda sid: "co-" + sid)
    engine.on_tick(tick("RELIANCE", 100.0))
    a, b = signal(quantity=10), signal(quantity=5)
    decide(engine, a)
    decide(engine, b)
    engine.on_fill(fill(Side.BUY, 10, 100.0, client_order_id="co-" + a.event_id))
    assert engine.state.pending_quantity("momentum-demo", "RELIANCE") == 5
    # the trading engine reports another id: learnt from orders.submitted
    engine.on_order_submitted(
        Order(
            event_id="o",
            exchange_ts=T0,
            client_order_id="K123",
            signal_id=b.event_id,
            strategy="momentum-demo",
            symbol="RELIANCE",
            side=Side.BUY,
            quantity=5,
            order_type=OrderType.MARKET,
        )
    )
    engine.on_fill(fill(Side.BUY, 5, 100.0, client_order_id="K123"))
    assert engine.state.pending == {}


def test_rules_apply_in_the_documented_order() -> None:
    engine = engine_with_prices(RELIANCE=100.0)
    engine.pause("momentum-demo")
    lim = limits(allowedInstruments=["TCS"])
    assert decide(engine, signal(quantity=5000), lim).reason is RiskReason.PAUSED
    engine.resume("momentum-demo")
    assert decide(engine, signal(quantity=5000), lim).reason is RiskReason.INSTRUMENT_NOT_ALLOWED
    # quantity before value before band
    d = decide(engine, signal(quantity=5001, limit_price=200.0), limits())
    assert d.reason is RiskReason.MAX_ORDER_QUANTITY
    d = decide(engine, signal(quantity=1000, limit_price=600.0), limits())
    assert d.reason is RiskReason.MAX_ORDER_VALUE
