"""EMA crossover: regimes, crossovers, flips, warm-up, determinism, snapshots."""

from __future__ import annotations

import json

import pytest

from alphaspt.core.events import Features, Side, stable_id
from alphaspt.strategies.momentum import MomentumParams, MomentumStrategy
from alphaspt.strategies.registry import load_strategy
from tests.unit.strategies.conftest import T0, fixed_clock, make_features

Emas = tuple[float, float]
BULL: Emas = (101.0, 100.0)
BEAR: Emas = (99.0, 100.0)
FLAT: Emas = (100.0, 100.0)


def feat(i: int, emas: Emas, *, price: float = 100.0, symbol: str = "RELIANCE") -> Features:
    return make_features(i, ema_fast=emas[0], ema_slow=emas[1], price=price, symbol=symbol)


def momentum(**params: object) -> MomentumStrategy:
    p = MomentumParams.model_validate({"warmup": 0, **params})
    return MomentumStrategy("momentum-demo", p, clock=fixed_clock)


def run(s: MomentumStrategy, regimes: list[Emas]) -> list[tuple[Side, int] | None]:
    out: list[tuple[Side, int] | None] = []
    for i, r in enumerate(regimes):
        signals = s.on_features(feat(i, r))
        assert len(signals) <= 1
        out.append((signals[0].side, signals[0].quantity) if signals else None)
    return out


def test_long_only_enters_on_bull_cross_and_exits_on_bear_cross() -> None:
    s = momentum(quantity=10)
    assert run(s, [FLAT, BULL, BULL, BEAR, BEAR, BULL]) == [
        None,
        (Side.BUY, 10),
        None,
        (Side.SELL, 10),
        None,
        (Side.BUY, 10),
    ]
    assert s.targets == {"RELIANCE": 10}


def test_short_allowed_flips_with_twice_the_quantity() -> None:
    s = momentum(quantity=10, allow_short=True)
    assert run(s, [BULL, BEAR, BULL, FLAT, BULL]) == [
        (Side.BUY, 10),
        (Side.SELL, 20),
        (Side.BUY, 20),
        None,  # inside the band: keep the regime
        None,  # still bullish: no new crossover
    ]


def test_first_bear_regime_without_short_is_no_trade() -> None:
    assert run(momentum(), [BEAR, BEAR]) == [None, None]


def test_threshold_band_is_exclusive() -> None:
    s = momentum(threshold=0.01)
    # 101.0 is exactly slow * (1 + 0.01): not above the band
    assert run(s, [(101.0, 100.0)]) == [None]
    assert run(s, [(101.01, 100.0)]) == [(Side.BUY, 1)]


def test_warmup_remembers_the_regime_and_waits_for_a_real_crossover() -> None:
    s = momentum(warmup=3, allow_short=True)
    # bullish during warm-up: the runner does not chase an established trend
    assert run(s, [BULL, BULL, BULL, BULL, BEAR]) == [None, None, None, None, (Side.SELL, 1)]


def test_first_regime_after_a_flat_warmup_trades() -> None:
    s = momentum(warmup=2)
    assert run(s, [FLAT, FLAT, BULL]) == [None, None, (Side.BUY, 1)]


def test_observe_feeds_history_without_signals_or_target_changes() -> None:
    s = momentum(warmup=2)
    for i, r in enumerate([BEAR, BULL, BULL]):
        s.observe(feat(i, r))
    assert s.targets == {}
    assert s.seen("RELIANCE") == 3
    assert s.warmed_up("RELIANCE")
    # regime after history is bullish: the next bullish event is not a crossover
    assert s.on_features(feat(3, BULL)) == []
    assert [x.side for x in s.on_features(feat(4, BEAR))] == []  # long-only, flat
    assert [x.side for x in s.on_features(feat(5, BULL))] == [Side.BUY]


def test_signal_fields_and_ids_are_deterministic() -> None:
    a = run_signals = momentum(quantity=3).on_features(feat(7, BULL, price=2500.5))
    b = momentum(quantity=3).on_features(feat(7, BULL, price=2500.5))
    assert a == b
    (sig,) = run_signals
    assert sig.event_id == stable_id("momentum-demo", "RELIANCE", "RELIANCE-t7", Side.BUY)
    assert sig.strategy == "momentum-demo"
    assert sig.symbol == "RELIANCE"
    assert sig.ref_price == 2500.5
    assert sig.exchange_ts == T0 + 7 * 10**9
    assert sig.ingest_ts == 42
    assert "crossed above" in sig.reason


def test_symbols_have_their_own_book() -> None:
    s = momentum(quantity=2)
    assert s.on_features(feat(0, BULL, symbol="TCS"))[0].symbol == "TCS"
    assert s.on_features(feat(1, BULL, symbol="INFY"))[0].symbol == "INFY"
    assert s.targets == {"TCS": 2, "INFY": 2}


def test_snapshot_restore_continues_identically() -> None:
    seq = [BULL, BEAR, BULL, BULL, BEAR, BULL]
    whole = momentum(allow_short=True)
    expected = run(whole, seq)
    first = momentum(allow_short=True)
    run(first, seq[:3])
    resumed = momentum(allow_short=True)
    resumed.restore(json.loads(json.dumps(first.snapshot())))
    assert resumed.targets == {"RELIANCE": 1}
    got = [
        (sig[0].side, sig[0].quantity) if (sig := resumed.on_features(feat(i, r))) else None
        for i, r in enumerate(seq)
        if i >= 3
    ]
    assert got == expected[3:]


def test_restore_refuses_another_class_or_garbage() -> None:
    mr = load_strategy("mean_reversion", "mr", {})
    with pytest.raises(ValueError, match="cannot restore"):
        momentum().restore(mr.snapshot())
    snap = momentum().snapshot()
    with pytest.raises(ValueError, match="regime"):
        momentum().restore({**snap, "state": {"regime": {"TCS": 7}}})
    with pytest.raises(ValueError, match="malformed"):
        momentum().restore({**snap, "targets": {"TCS": "long"}})


def test_set_target_aligns_the_book() -> None:
    s = momentum(quantity=5)
    run(s, [BULL])
    s.set_target("RELIANCE", 0)  # e.g. the order was rejected downstream
    assert s.targets == {}
    assert run(s, [BEAR, BULL]) == [None, (Side.BUY, 5)]
