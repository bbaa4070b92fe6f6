"""From a custom resource's ``strategy``/``params`` to a ready :class:`Strategy`.

``ref`` is a built-in name (:data:`BUILTIN_STRATEGIES`) or ``package.module:ClassName``
naming a :class:`Strategy` subclass importable in the worker's image.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from alphaspt.core.events import now_ns
from alphaspt.exceptions import InvalidConfiguration, UnknownStrategy
from alphaspt.strategies.base import Strategy, StrategyParams
from alphaspt.strategies.mean_reversion import MeanReversionStrategy
from alphaspt.strategies.momentum import MomentumStrategy

BUILTIN_STRATEGIES: Final[Mapping[str, type[Strategy[Any]]]] = {
    "momentum": MomentumStrategy,
    "mean_reversion": MeanReversionStrategy,
}

_MODULE_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_]\w*)$")


def resolve_strategy(ref: str) -> type[Strategy[Any]]:
    """The strategy class ``ref`` names. Raises :class:`UnknownStrategy`."""
    if ref in BUILTIN_STRATEGIES:
        return BUILTIN_STRATEGIES[ref]
    match = _MODULE_REF.match(ref)
    if match is None:
        raise UnknownStrategy(
            f"unknown strategy {ref!r}: use a built-in ({', '.join(sorted(BUILTIN_STRATEGIES))}) "
            "or 'package.module:ClassName'"
        )
    module_name, class_name = match.groups()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownStrategy(
            f"strategy {ref!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    except Exception as exc:  # the user's module failed while importing
        raise InvalidConfiguration(
            f"strategy {ref!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise UnknownStrategy(f"strategy {ref!r}: module {module_name!r} has no {class_name!r}")
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise UnknownStrategy(
            f"strategy {ref!r}: {class_name} is not a subclass of alphaspt.strategies.Strategy"
        )
    if inspect.isabstract(cls):
        raise UnknownStrategy(f"strategy {ref!r}: {class_name} is abstract")
    params_model = getattr(cls, "Params", None)
    if not (inspect.isclass(params_model) and issubclass(params_model, StrategyParams)):
        raise InvalidConfiguration(
            f"strategy {ref!r}: {class_name}.Params must be a subclass of StrategyParams"
        )
    if params_model.model_config.get("extra") != "forbid":
        raise InvalidConfiguration(
            f"strategy {ref!r}: {class_name}.Params must keep extra='forbid' "
            "so that misspelt params are refused"
        )
    return cls


def load_strategy(
    ref: str,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], int] = now_ns,
) -> Strategy[Any]:
    """Build the strategy ``ref`` named ``name`` (the TradingStrategy's name) from raw params.

    Raises :class:`UnknownStrategy` when ``ref`` names nothing usable and
    :class:`InvalidConfiguration` when the params are invalid (every pydantic error listed).
    """
    cls = resolve_strategy(ref)
    try:
        parsed = cls.parse_params(params)
    except InvalidConfiguration as exc:
        raise InvalidConfiguration(f"strategy {name!r} ({ref}): {exc}") from exc.__cause__
    try:
        return cls(name, parsed, clock=clock)
    except InvalidConfiguration:
        raise
    except Exception as exc:
        raise InvalidConfiguration(
            f"strategy {name!r} ({ref}): constructor raised {type(exc).__name__}: {exc}"
        ) from exc
