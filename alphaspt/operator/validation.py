"""Would the workers accept this strategy? The check ``alphaspt up`` runs too
(:func:`alphaspt.strategies.validation.validate_strategy`: the spec, the strategy's name and
its ``params`` against the strategy's own ``Params`` model, with the workers' code).

A ``package.module:Class`` strategy whose module the operator's image cannot import, on a
strategy that names its own worker ``image``, lives in that image only; its runner checks it
there (the operator cannot).
"""

from __future__ import annotations

from alphaspt.core.specs import TradingStrategySpec
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.strategies.validation import summary, validate_strategy


def check_strategy(name: str, spec: TradingStrategySpec, namespace: str = "default") -> None:
    """Raises :class:`~alphaspt.exceptions.InvalidConfiguration` with the first problem (one
    line naming the resource and the field) when the runner would refuse to start."""
    problems = validate_strategy(name, spec, namespace=namespace)
    if problems:
        raise InvalidConfiguration(summary(problems))
