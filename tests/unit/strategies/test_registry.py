"""Loading strategies by built-in name or module:Class, and refusing bad references/params."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from alphaspt.exceptions import InvalidConfiguration, UnknownStrategy
from alphaspt.strategies import MeanReversionStrategy, MomentumStrategy, load_strategy
from alphaspt.strategies.registry import resolve_strategy
from tests.unit.strategies.conftest import make_features

CUSTOM = """
from pydantic import ConfigDict, Field

from alphaspt.core.events import Features
from alphaspt.strategies.base import Strategy, StrategyParams


class BreakoutParams(StrategyParams):
    quantity: int = Field(default=1, ge=1)
    level: float


class Breakout(Strategy[BreakoutParams]):
    Params = BreakoutParams
    warmup = 0

    def decide(self, features: Features, current: int) -> int | None:
        return self.params.quantity if features.price > self.params.level else 0


class LooseParams(StrategyParams):
    model_config = ConfigDict(extra="allow")


class Loose(Breakout):
    Params = LooseParams  # type: ignore[assignment]


class NotAStrategy:
    pass
"""


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    return write


def test_builtins_by_name_with_camel_or_snake_params() -> None:
    s = load_strategy("momentum", "momentum-demo", {"quantity": 5, "allowShort": True})
    assert isinstance(s, MomentumStrategy)
    assert s.name == "momentum-demo"
    assert (s.params.quantity, s.params.allow_short) == (5, True)
    m = load_strategy("mean_reversion", "mr", {"entry_z": 2.5, "exit_z": 0.25, "warmup": 5})
    assert isinstance(m, MeanReversionStrategy)
    assert (m.params.entry_z, m.params.exit_z, m.warmup) == (2.5, 0.25, 5)
    assert load_strategy("momentum", "defaults", None).params.quantity == 1


def test_builtin_by_module_path() -> None:
    s = load_strategy("alphaspt.strategies.momentum:MomentumStrategy", "m", {})
    assert type(s) is MomentumStrategy


def test_misspelt_param_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidConfiguration) as err:
        load_strategy("momentum", "momentum-demo", {"quantitty": 5})
    msg = str(err.value)
    assert "momentum-demo" in msg
    assert "quantitty: Extra inputs are not permitted" in msg


def test_every_param_error_is_listed() -> None:
    with pytest.raises(InvalidConfiguration) as err:
        load_strategy("momentum", "m", {"quantity": 0, "threshold": -1, "allowShort": "maybe"})
    msg = str(err.value)
    assert "quantity: Input should be greater than or equal to 1" in msg
    assert "threshold: Input should be greater than or equal to 0" in msg
    assert "allowShort: Input should be a valid boolean" in msg


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("momentom", "unknown strategy 'momentom'"),
        ("not a ref!", "unknown strategy"),
        ("no_such_pkg.mod:Thing", "cannot import module 'no_such_pkg.mod'"),
        ("alphaspt.strategies.momentum:Nope", "has no 'Nope'"),
        ("alphaspt.strategies.momentum:MomentumParams", "is not a subclass"),
        ("alphaspt.strategies.base:Strategy", "is abstract"),
    ],
)
def test_unknown_references(ref: str, fragment: str) -> None:
    with pytest.raises(UnknownStrategy, match=fragment):
        load_strategy(ref, "x", {})


def test_unknown_builtin_lists_the_builtins() -> None:
    with pytest.raises(UnknownStrategy, match="mean_reversion, momentum"):
        resolve_strategy("breakout")


def test_custom_module_class_is_loaded_and_trades(custom_module: Callable[[str, str], str]) -> None:
    mod = custom_module("alphaspt_custom_strats", CUSTOM)
    s = load_strategy(f"{mod}:Breakout", "breakout-1", {"level": 100.0, "quantity": 3})
    (sig,) = s.on_features(make_features(0, price=101.0))
    assert (sig.strategy, sig.quantity) == ("breakout-1", 3)
    with pytest.raises(InvalidConfiguration, match="level: Field required"):
        load_strategy(f"{mod}:Breakout", "b", {})


def test_custom_refusals(custom_module: Callable[[str, str], str]) -> None:
    mod = custom_module("alphaspt_custom_strats2", CUSTOM)
    with pytest.raises(UnknownStrategy, match="not a subclass"):
        load_strategy(f"{mod}:NotAStrategy", "x", {})
    with pytest.raises(InvalidConfiguration, match="extra='forbid'"):
        load_strategy(f"{mod}:Loose", "x", {})
    broken = custom_module("alphaspt_custom_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(InvalidConfiguration, match="RuntimeError: boom"):
        load_strategy(f"{broken}:Anything", "x", {})


def test_empty_name_is_refused() -> None:
    with pytest.raises(InvalidConfiguration, match="non-empty name"):
        load_strategy("momentum", "", {})
