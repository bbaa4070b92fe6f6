"""Pure strategy code: features from ticks, signals from features.

Imports nothing from Kafka, Redis, PostgreSQL or Kubernetes (import-linter enforces it).
"""

from alphaspt.strategies.base import Strategy, StrategyParams
from alphaspt.strategies.features import FeatureCalculator, FeatureConfig, InvalidTick, ist_day
from alphaspt.strategies.mean_reversion import MeanReversionParams, MeanReversionStrategy
from alphaspt.strategies.momentum import MomentumParams, MomentumStrategy
from alphaspt.strategies.registry import BUILTIN_STRATEGIES, load_strategy, resolve_strategy

__all__ = [
    "BUILTIN_STRATEGIES",
    "FeatureCalculator",
    "FeatureConfig",
    "InvalidTick",
    "MeanReversionParams",
    "MeanReversionStrategy",
    "MomentumParams",
    "MomentumStrategy",
    "Strategy",
    "StrategyParams",
    "ist_day",
    "load_strategy",
    "resolve_strategy",
]
