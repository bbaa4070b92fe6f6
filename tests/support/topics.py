"""Reading the pipeline topics back, as the tests' assertions see them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import TOPIC_TYPES, Codec, RiskDecision
from alphaspt.core.streaming.reader import read_to_end


def strategy_events(kafka: KafkaConfig, topic: str,
                    strategies: str | Collection[str]) -> list[Any]:
    """The events on ``topic`` of ``strategies`` (one name or several; a decision belongs
    to its signal's strategy), in log order, redelivered copies included."""
    wanted = {strategies} if isinstance(strategies, str) else set(strategies)
    codec = Codec(TOPIC_TYPES[topic])
    out: list[Any] = []
    for msg in read_to_end(kafka, topic):
        e = codec.decode(msg.value())
        owner = e.signal.strategy if isinstance(e, RiskDecision) else getattr(e, "strategy", "")
        if owner in wanted:
            out.append(e)
    return out
