"""Feature maths on small series computed by hand."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from alphaspt.core.events import Features, stable_id
from alphaspt.strategies.features import FeatureCalculator, FeatureConfig, InvalidTick, ist_day
from tests.unit.strategies.conftest import SECOND, T0, fixed_clock, make_tick

SMALL = FeatureConfig(ema_fast_span=3, ema_slow_span=7, window=3, vol_window=3)
"""alpha_fast = 2/4 = 0.5, alpha_slow = 2/8 = 0.25."""


def feed(calc: FeatureCalculator, prices: list[float], **kw: object) -> list[Features | None]:
    return [calc.update(make_tick(p, i, **kw)) for i, p in enumerate(prices)]  # type: ignore[arg-type]


def test_first_tick_only_seeds_the_state() -> None:
    calc = FeatureCalculator(SMALL)
    assert calc.update(make_tick(10.0, 0)) is None
    f = calc.update(make_tick(11.0, 1))
    assert f is not None
    assert f.count == 2


def test_ema_return_mean_std_zscore_on_a_worked_series() -> None:
    out = feed(FeatureCalculator(SMALL), [10.0, 11.0, 12.0, 9.0])
    second, third, fourth = out[1], out[2], out[3]
    assert second is not None
    assert third is not None
    assert fourth is not None
    # seeded with 10: fast 10, 10.5, 11.25, 10.125; slow 10, 10.25, 10.6875, 10.265625
    assert [f.ema_fast for f in (second, third, fourth)] == [10.5, 11.25, 10.125]
    assert [f.ema_slow for f in (second, third, fourth)] == [10.25, 10.6875, 10.265625]
    assert second.ret == pytest.approx(0.1)
    assert fourth.ret == pytest.approx(-0.25)
    # window [10, 11]: mean 10.5, population std 0.5, z = (11 - 10.5) / 0.5
    assert (second.mean, second.std, second.zscore) == (10.5, 0.5, 1.0)
    # window [11, 12, 9]: mean 32/3, deviations 1/3, 4/3, -5/3 -> var 14/9, z = -5/sqrt(14)
    assert fourth.mean == pytest.approx(32 / 3)
    assert fourth.std == pytest.approx(math.sqrt(14) / 3)
    assert fourth.zscore == pytest.approx(-1.3363062095621219)
    assert fourth.count == 4


def test_zscore_is_zero_on_a_flat_window_despite_float_noise() -> None:
    # 100.1 is not exactly representable: a naive mean differs from it by ulps,
    # which would give a z-score of +-1 from noise.
    out = feed(FeatureCalculator(FeatureConfig(window=20)), [100.1] * 25)
    for f in out[1:]:
        assert f is not None
        assert f.std == 0.0
        assert f.zscore == 0.0


def test_a_window_that_was_wide_and_is_now_flat_has_zero_std() -> None:
    # The running sum of squares keeps a rounding residue of its wide past (about 1e-18
    # here) once the window is flat: it must not show as a std of 3.5e-10.
    out = feed(FeatureCalculator(FeatureConfig(window=7)), [1.0] * 4 + [1.05] * 12)
    for i, f in enumerate(out[10:], start=10):
        assert f is not None
        assert (f.std, f.zscore) == (0.0, 0.0), (i, f.std)


def test_realised_volatility_is_sample_std_of_log_returns() -> None:
    out = feed(FeatureCalculator(SMALL), [100.0, 110.0, 99.0, 99.0])
    assert out[1] is not None
    assert out[1].volatility == 0.0
    last = out[3]
    assert last is not None
    # returns ln 1.1, ln 0.9, 0 ; sample std (ddof 1)
    assert last.volatility == pytest.approx(0.10037728548770321)
    r = [math.log(1.1), math.log(0.9), 0.0]
    m = sum(r) / 3
    assert last.volatility == pytest.approx(math.sqrt(sum((x - m) ** 2 for x in r) / 2))


def test_volatility_window_slides_and_annualisation_scales() -> None:
    cfg = FeatureConfig(ema_fast_span=3, ema_slow_span=7, window=3, vol_window=2, annualisation=4)
    out = feed(FeatureCalculator(cfg), [100.0, 110.0, 99.0, 99.0])
    last = out[3]
    assert last is not None
    # last two returns: ln 0.9 and 0 -> sample std = |ln 0.9| / sqrt 2, times sqrt 4
    assert last.volatility == pytest.approx(2 * abs(math.log(0.9)) / math.sqrt(2))


def test_vwap_from_quantities() -> None:
    calc = FeatureCalculator(SMALL)
    calc.update(make_tick(100.0, 0, quantity=10))
    f = calc.update(make_tick(102.0, 1, quantity=30))
    assert f is not None
    assert f.vwap == (100 * 10 + 102 * 30) / 40 == 101.5
    f = calc.update(make_tick(105.0, 2, quantity=0))
    assert f is not None
    assert f.vwap == 101.5


def test_vwap_uses_cumulative_volume_increments_when_present() -> None:
    calc = FeatureCalculator(SMALL)
    calc.update(make_tick(100.0, 0, quantity=50, volume=1000))
    # volume 1000 -> 1300: 300 traded (not the repeated last quantity 50)
    f = calc.update(make_tick(101.0, 1, quantity=50, volume=1300))
    assert f is not None
    assert f.vwap == pytest.approx(100.85714285714286)
    # same cumulative volume: nothing traded, last_quantity is a repeat
    f = calc.update(make_tick(104.0, 2, quantity=50, volume=1300))
    assert f is not None
    assert f.vwap == pytest.approx(100.85714285714286)


def test_vwap_is_the_price_before_any_quantity_and_resets_at_ist_midnight() -> None:
    before = int(datetime(2024, 6, 3, 18, 29, 59, tzinfo=UTC).timestamp()) * 10**9
    midnight_ist = int(datetime(2024, 6, 3, 18, 30, tzinfo=UTC).timestamp()) * 10**9
    assert ist_day(midnight_ist) == ist_day(before) + 1
    calc = FeatureCalculator(SMALL)
    calc.update(make_tick(100.0, 0, ts=before - 10**9))
    f = calc.update(make_tick(101.0, 1, quantity=10, ts=before))
    assert f is not None
    assert f.vwap == 101.0
    f = calc.update(make_tick(90.0, 2, quantity=0, ts=midnight_ist))
    assert f is not None
    assert f.vwap == 90.0
    f = calc.update(make_tick(92.0, 3, quantity=10, ts=midnight_ist + 1))
    assert f is not None
    assert f.vwap == 92.0


def test_ids_and_timestamps_are_deterministic() -> None:
    a = feed(FeatureCalculator(SMALL, clock=fixed_clock), [10.0, 11.0, 12.0])
    b = feed(FeatureCalculator(SMALL, clock=fixed_clock), [10.0, 11.0, 12.0])
    assert a == b
    f = a[2]
    assert f is not None
    assert f.event_id == stable_id("features", "RELIANCE-t2")
    assert f.tick_id == "RELIANCE-t2"
    assert f.exchange_ts == T0 + 2 * 10**9
    assert f.ingest_ts == 42


def test_duplicate_and_stale_ticks_change_nothing() -> None:
    clean = FeatureCalculator(SMALL, clock=fixed_clock)
    dirty = FeatureCalculator(SMALL, clock=fixed_clock)
    for i, p in enumerate([10.0, 11.0, 12.0]):
        clean.update(make_tick(p, i))
        dirty.update(make_tick(p, i))
    assert dirty.update(make_tick(12.0, 2)) is None  # redelivered
    assert dirty.update(make_tick(10.0, 0)) is None  # redelivered first tick
    assert dirty.update(make_tick(50.0, 99, ts=T0)) is None  # older than the newest
    assert dirty.update(make_tick(13.0, 3)) == clean.update(make_tick(13.0, 3))


def test_ticks_sharing_a_timestamp_each_count_and_their_redeliveries_do_not() -> None:
    calc = FeatureCalculator(SMALL, clock=fixed_clock)
    calc.update(make_tick(10.0, 0))
    same = T0 + 5 * SECOND
    first = calc.update(make_tick(11.0, 1, ts=same))
    second = calc.update(make_tick(12.0, 2, ts=same))  # another trade in the same instant
    assert first is not None and second is not None and second.count == 3
    assert calc.update(make_tick(11.0, 1, ts=same)) is None  # redelivered, same instant
    assert calc.update(make_tick(12.0, 2, ts=same)) is None
    after = calc.update(make_tick(13.0, 3, ts=same + SECOND))
    assert after is not None and after.count == 4
    assert calc.update(make_tick(12.0, 2, ts=same)) is None  # now stale as well


def test_a_restored_state_still_drops_the_redeliveries_of_its_newest_instant() -> None:
    calc = FeatureCalculator(SMALL, clock=fixed_clock)
    same = T0 + SECOND
    for i in range(3):
        calc.update(make_tick(10.0 + i, i, ts=same))
    data = calc.export("RELIANCE")
    assert data is not None
    # the ids remembered are those of the newest timestamp, not a growing history
    assert json.loads(data)["recent_ids"] == ["RELIANCE-t0", "RELIANCE-t1", "RELIANCE-t2"]
    restored = FeatureCalculator(SMALL, clock=fixed_clock)
    restored.load("RELIANCE", data)
    assert restored.update(make_tick(11.0, 1, ts=same)) is None
    later = restored.update(make_tick(14.0, 4, ts=same + SECOND))
    assert later is not None
    assert json.loads(restored.export("RELIANCE") or b"{}")["recent_ids"] == ["RELIANCE-t4"]


def test_symbols_are_independent() -> None:
    calc = FeatureCalculator(SMALL)
    calc.update(make_tick(10.0, 0, symbol="TCS"))
    assert calc.update(make_tick(500.0, 1, symbol="INFY")) is None
    f = calc.update(make_tick(11.0, 2, symbol="TCS"))
    assert f is not None
    assert f.count == 2
    assert f.ret == pytest.approx(0.1)
    assert calc.symbols == ["INFY", "TCS"]


@pytest.mark.parametrize(
    ("price", "quantity"), [(0.0, 0), (-1.0, 0), (math.nan, 0), (math.inf, 0), (10.0, -1)]
)
def test_invalid_ticks_are_refused(price: float, quantity: int) -> None:
    with pytest.raises(InvalidTick):
        FeatureCalculator(SMALL).update(make_tick(price, 0, quantity=quantity))


def test_snapshot_round_trips_through_json() -> None:
    prices = [10.0, 11.0, 12.0, 9.0, 9.5, 10.5, 11.0]
    whole = FeatureCalculator(SMALL, clock=fixed_clock)
    expected = [whole.update(make_tick(p, i, quantity=5)) for i, p in enumerate(prices)]

    first = FeatureCalculator(SMALL, clock=fixed_clock)
    for i, p in enumerate(prices[:4]):
        first.update(make_tick(p, i, quantity=5))
    resumed = FeatureCalculator(SMALL, clock=fixed_clock)
    resumed.restore(json.loads(json.dumps(first.snapshot())))
    assert [resumed.update(make_tick(p, i, quantity=5)) for i, p in enumerate(prices)][4:] == (
        expected[4:]
    )
    # dedup memory survives the restore too
    assert resumed.update(make_tick(prices[6], 6, quantity=5)) is None


def test_malformed_snapshot_is_refused() -> None:
    calc = FeatureCalculator(SMALL)
    with pytest.raises(ValueError, match="version"):
        calc.restore({"version": 99})
    with pytest.raises(ValueError, match="malformed"):
        calc.restore({"version": 1, "symbols": {"TCS": {"count": "x"}}})


def test_config_is_frozen_and_validated() -> None:
    with pytest.raises(ValidationError, match="ema_fast_span"):
        FeatureConfig(ema_fast_span=26, ema_slow_span=12)
    with pytest.raises(ValidationError):
        FeatureConfig(windw=5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SMALL.window = 5  # type: ignore[misc]
