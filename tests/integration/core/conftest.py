"""Helpers for the streaming tests: topics, producing inputs, reading outputs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message

from alphaspt.core.config import KafkaConfig
from alphaspt.core.streaming import EventProducer, TopicSpec, admin_client, ensure_topics


def _read_all(kafka: KafkaConfig, topic: str, *, expect: int, timeout: float = 60.0,
             committed: bool = True, settle: float = 2.0) -> list[Message]:
    """Read ``topic`` from the beginning until ``expect`` messages arrived and nothing more
    came for ``settle`` seconds (so duplicates would be seen), or until ``timeout``."""
    consumer = Consumer({
        **kafka.consumer_config(),
        "group.id": f"reader-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed else "read_uncommitted",
    })
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(500, 0.2)
            good = [m for m in batch if m.error() is None]
            if good:
                out.extend(good)
                last_new = time.monotonic()
            elif len(out) >= expect and time.monotonic() - last_new >= settle:
                break
    finally:
        consumer.close()
    return out


@pytest.fixture
def make_topics(kafka: KafkaConfig) -> Callable[..., None]:
    def make(*names: str, partitions: int = 1) -> None:
        ensure_topics(admin_client(kafka), [TopicSpec(n, partitions) for n in names])
    return make


@pytest.fixture
def producer(kafka: KafkaConfig) -> EventProducer:
    return EventProducer(kafka)


@pytest.fixture
def read_all(kafka: KafkaConfig) -> Callable[..., list[Message]]:
    def read(topic: str, **kwargs: object) -> list[Message]:
        return _read_all(kafka, topic, **kwargs)  # type: ignore[arg-type]
    return read
