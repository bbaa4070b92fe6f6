"""Feature engine: market.ticks → market.features, one task per ticks partition.

Co-partitioned: the state of the symbols of ticks partition *p* lives in partition *p* of
the changelog (one key per symbol), so N replicas split the partitions through the
consumer group and a rebalance hands each partition's state to its new owner. A
redelivered tick is dropped by its symbol's state (the last timestamp and the ids seen
at it).

Bounds: one key per symbol; each holds the rolling windows (``window``, ``vol_window``
prices) and at most 64 tick ids (those of its newest timestamp).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from alphaspt.core.config import Settings
from alphaspt.core.events import Codec, Event, Tick, Topics
from alphaspt.core.streaming import Output, ProcessorConfig, StreamProcessor
from alphaspt.strategies import FeatureCalculator, FeatureConfig


class FeatureEngine(StreamProcessor):
    stage = "feature-engine"
    copartitioned = True

    def __init__(self, settings: Settings, config: ProcessorConfig,
                 features: FeatureConfig | None = None) -> None:
        super().__init__(settings.kafka, config, {Topics.TICKS: Codec(Tick)})
        self.features = features
        self.calculators: dict[int, FeatureCalculator] = {}

    def _calculator(self, task: int) -> FeatureCalculator:
        calc = self.calculators.get(task)
        if calc is None:
            calc = self.calculators[task] = FeatureCalculator(self.features)
        return calc

    def process(self, topic: str, event: Event) -> Iterable[Output]:
        assert isinstance(event, Tick)
        features = self._calculator(self.task).update(event)  # InvalidTick → dead letter
        self.touch(event.symbol)
        return () if features is None else (Output(Topics.FEATURES, features.symbol, features),)

    def state_value(self, task: int, key: str) -> bytes | None:
        return self._calculator(task).export(key)

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        calc = self.calculators[task] = FeatureCalculator(self.features)
        for symbol, data in items.items():
            calc.load(symbol, data)

    def drop_task(self, task: int) -> None:
        self.calculators.pop(task, None)
