"""Z-score bands, inclusive boundaries, flips and parameter validation."""

from __future__ import annotations

import pytest

from alphaspt.core.events import Side, stable_id
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.strategies.mean_reversion import MeanReversionParams, MeanReversionStrategy
from tests.unit.strategies.conftest import fixed_clock, make_features


def strategy(**params: object) -> MeanReversionStrategy:
    p = MeanReversionParams.model_validate({"warmup": 0, **params})
    return MeanReversionStrategy("mr-demo", p, clock=fixed_clock)


def run(s: MeanReversionStrategy, zs: list[float]) -> list[tuple[Side, int] | None]:
    out: list[tuple[Side, int] | None] = []
    for i, z in enumerate(zs):
        signals = s.on_features(make_features(i, zscore=z))
        out.append((signals[0].side, signals[0].quantity) if signals else None)
    return out


def test_long_only_bands_with_inclusive_boundaries() -> None:
    s = strategy(quantity=4, entry_z=2.0, exit_z=0.5)
    assert run(s, [-1.99, -2.0, -3.0, -1.0, 0.51, 0.5, 2.5, -0.2]) == [
        None,  # inside the bands, flat stays flat
        (Side.BUY, 4),  # z == -entry_z enters
        None,  # already long
        None,  # between exit and entry: hold
        None,  # |z| just above exit_z: hold
        (Side.SELL, 4),  # |z| == exit_z exits
        None,  # overbought, shorting not allowed, already flat
        None,
    ]


def test_overbought_exits_a_long_without_shorting() -> None:
    s = strategy(quantity=4)
    assert run(s, [-2.5, 2.0]) == [(Side.BUY, 4), (Side.SELL, 4)]
    assert s.targets == {}


def test_short_side_and_flip() -> None:
    s = strategy(quantity=4, allow_short=True)
    assert run(s, [2.0, -2.0, 0.0]) == [(Side.SELL, 4), (Side.BUY, 8), (Side.SELL, 4)]


def test_warmup_suppresses_signals_per_symbol() -> None:
    s = strategy(warmup=2)
    assert run(s, [-3.0, -3.0, -3.0]) == [None, None, (Side.BUY, 1)]


def test_ids_are_deterministic() -> None:
    (sig,) = strategy().on_features(make_features(5, zscore=-2.2))
    assert sig.event_id == stable_id("mr-demo", "RELIANCE", "RELIANCE-t5", Side.BUY)
    assert sig.reason.startswith("zscore -2.200")


def test_params_validation() -> None:
    with pytest.raises(InvalidConfiguration, match="exit_z"):
        MeanReversionStrategy.parse_params({"entryZ": 1.0, "exitZ": 1.0})
    with pytest.raises(InvalidConfiguration, match="entryZ"):
        MeanReversionStrategy.parse_params({"entryZ": 0})
    parsed = MeanReversionStrategy.parse_params({"entryZ": 1.5, "allow_short": True})
    assert parsed == MeanReversionParams(entry_z=1.5, allow_short=True)


def test_constructor_refuses_foreign_params() -> None:
    from alphaspt.strategies.momentum import MomentumParams

    with pytest.raises(InvalidConfiguration, match="expects MeanReversionParams"):
        MeanReversionStrategy("mr", MomentumParams())  # type: ignore[arg-type]
