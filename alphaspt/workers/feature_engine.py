"""Feature engine: market.ticks → market.features, exactly once, state in alphaspt.state."""

from __future__ import annotations

import json
from collections.abc import Iterable

from alphaspt.core.config import Settings
from alphaspt.core.events import Codec, Event, Tick, Topics
from alphaspt.core.streaming import Output, ProcessorConfig, StreamProcessor
from alphaspt.strategies import FeatureCalculator, FeatureConfig


class FeatureEngine(StreamProcessor):
    stage = "feature-engine"

    def __init__(self, settings: Settings, config: ProcessorConfig,
                 features: FeatureConfig | None = None) -> None:
        super().__init__(settings.kafka, config, {Topics.TICKS: Codec(Tick)})
        self.calculator = FeatureCalculator(features)

    def process(self, topic: str, event: Event) -> Iterable[Output]:
        assert isinstance(event, Tick)
        features = self.calculator.update(event)  # InvalidTick → dead letter with reason
        if features is not None:
            yield Output(Topics.FEATURES, features.symbol, features)

    def save_state(self) -> bytes | None:
        return json.dumps(self.calculator.snapshot(), separators=(",", ":")).encode()

    def load_state(self, data: bytes) -> None:
        self.calculator.restore(json.loads(data))
