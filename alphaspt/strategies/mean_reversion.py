"""Z-score mean reversion.

On each event, from ``features.zscore`` (population z-score over the feature window):
``z <= -entry_z`` → target ``+quantity`` (long the dip); ``z >= entry_z`` → target
``-quantity`` with ``allow_short``, else flat (a stretched price exits a long);
``|z| <= exit_z`` → flat (back to the mean). Between the bands the target is kept.
Boundaries are inclusive: ``z == -entry_z`` enters, ``|z| == exit_z`` exits.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from alphaspt.core.events import Features
from alphaspt.strategies.base import Strategy, StrategyParams


class MeanReversionParams(StrategyParams):
    quantity: int = Field(default=1, ge=1)
    entry_z: float = Field(default=2.0, gt=0)
    exit_z: float = Field(default=0.5, ge=0)
    allow_short: bool = False
    warmup: int = Field(default=20, ge=0)
    """Feature events per symbol before trading; defaults to the feature window."""

    @model_validator(mode="after")
    def _bands(self) -> MeanReversionParams:
        if self.exit_z >= self.entry_z:
            raise ValueError(
                f"exit_z ({self.exit_z}) must be smaller than entry_z ({self.entry_z})"
            )
        return self


class MeanReversionStrategy(Strategy[MeanReversionParams]):
    Params = MeanReversionParams

    @property
    def warmup(self) -> int:
        return self.params.warmup

    def decide(self, features: Features, current: int) -> int | None:
        z = features.zscore
        p = self.params
        if z <= -p.entry_z:
            return p.quantity
        if z >= p.entry_z:
            return -p.quantity if p.allow_short else 0
        if abs(z) <= p.exit_z:
            return 0
        return None

    def explain(self, features: Features, current: int, wanted: int) -> str:
        return f"zscore {features.zscore:.3f}; target {current} -> {wanted}"
