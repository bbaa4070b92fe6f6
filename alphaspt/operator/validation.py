"""Would the workers accept this strategy? Checked with the workers' own code.

One small function, so that the shared validation of ``alphaspt up`` can replace it:
:func:`check_strategy` builds the strategy exactly as the strategy runner does
(:func:`~alphaspt.strategies.load_strategy`: the strategy's name resolves, its ``params``
pass the strategy's own ``Params`` model), and raises what ``load_strategy`` raises.

One exception: a ``package.module:Class`` strategy whose module the operator's image cannot
import, on a strategy that names its own worker ``image``, lives in that image only; its
runner checks it there (the operator cannot).
"""

from __future__ import annotations

from alphaspt.core.specs import TradingStrategySpec
from alphaspt.exceptions import UnknownStrategy
from alphaspt.strategies import load_strategy


def check_strategy(name: str, spec: TradingStrategySpec) -> None:
    """Raises :class:`~alphaspt.exceptions.InvalidConfiguration` (``UnknownStrategy``
    included) with the workers' message when the runner would refuse to start."""
    try:
        load_strategy(spec.strategy, name, spec.params)
    except UnknownStrategy as exc:
        if spec.image is not None and isinstance(exc.__cause__, ImportError):
            return
        raise
