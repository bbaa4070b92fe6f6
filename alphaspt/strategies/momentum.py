"""EMA-crossover momentum.

Regime per symbol from the features' EMAs and a relative ``threshold``:
bullish when ``ema_fast > ema_slow * (1 + threshold)``, bearish when
``ema_fast < ema_slow * (1 - threshold)``, otherwise *neutral* (inside the band: no
opinion, the last regime stands). The strategy acts only when the regime **changes**
(a crossover): bullish → target ``+quantity``; bearish → ``-quantity`` with
``allow_short``, else flat. The first regime ever seen for a symbol counts as a change
(from "none"); regimes seen during warm-up are remembered but not traded, so a runner
that starts mid-trend waits for the next crossover instead of chasing it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from alphaspt.core.events import Features
from alphaspt.strategies.base import Strategy, StrategyParams


class MomentumParams(StrategyParams):
    quantity: int = Field(default=1, ge=1)
    """Shares per position."""
    threshold: float = Field(default=0.0, ge=0, lt=1)
    """Relative band around the slow EMA, e.g. 0.001 = 0.1 %."""
    allow_short: bool = False
    warmup: int = Field(default=26, ge=0)
    """Feature events per symbol before trading; defaults to the slow EMA span."""


class MomentumStrategy(Strategy[MomentumParams]):
    Params = MomentumParams

    def __init__(self, name: str, params: MomentumParams, **kwargs: Any) -> None:
        super().__init__(name, params, **kwargs)
        self._regime: dict[str, int] = {}

    @property
    def warmup(self) -> int:
        return self.params.warmup

    def regime(self, features: Features) -> int:
        """+1 bullish, -1 bearish, 0 neutral (inside the threshold band)."""
        th = self.params.threshold
        if features.ema_fast > features.ema_slow * (1 + th):
            return 1
        if features.ema_fast < features.ema_slow * (1 - th):
            return -1
        return 0

    def decide(self, features: Features, current: int) -> int | None:
        regime = self.regime(features)
        if regime == 0 or regime == self._regime.get(features.symbol):
            return None
        self._regime[features.symbol] = regime
        if regime > 0:
            return self.params.quantity
        return -self.params.quantity if self.params.allow_short else 0

    def explain(self, features: Features, current: int, wanted: int) -> str:
        word = "above" if wanted > current else "below"
        return (
            f"ema_fast {features.ema_fast:.4f} crossed {word} ema_slow {features.ema_slow:.4f}; "
            f"target {current} -> {wanted}"
        )

    def _state_snapshot(self) -> dict[str, Any]:
        return {"regime": dict(self._regime)}

    def _state_restore(self, state: dict[str, Any]) -> None:
        regime = state.get("regime", {})
        if not isinstance(regime, dict) or any(v not in (-1, 1) for v in regime.values()):
            raise ValueError("malformed momentum state: regime must map symbols to -1 or 1")
        self._regime = {str(k): int(v) for k, v in regime.items()}
