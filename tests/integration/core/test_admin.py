"""Topics: created when missing, grown where the broker can, never shrunk."""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka.admin import AdminClient

from alphaspt.core.config import KafkaConfig
from alphaspt.core.streaming import TopicSpec, admin_client, ensure_topics
from alphaspt.core.streaming.admin import existing_partitions

pytestmark = pytest.mark.integration


def partitions(admin: AdminClient, name: str, expect: int, timeout: float = 10.0) -> int:
    """The topic's partition count in the metadata, once it is ``expect`` (metadata
    reaches every broker a moment after the change; a loaded Apache Kafka has been seen
    serving the old count right after CreatePartitions returned) or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        have = existing_partitions(admin).get(name, 0)
        if have == expect or time.monotonic() >= deadline:
            return have
        time.sleep(0.2)


def test_create_grow_and_never_shrink(kafka: KafkaConfig, unique: str) -> None:
    admin = admin_client(kafka)
    name = f"admin-{unique}"
    first = ensure_topics(admin, [TopicSpec(name, 1)])
    assert first.created == (name,)
    assert ensure_topics(admin, [TopicSpec(name, 1)]).unchanged == (name,)

    grown = ensure_topics(admin, [TopicSpec(name, 3)])
    if os.environ.get("ALPHASPT_TEST_KAFKA", "tansu") == "apache":
        assert grown.grown == (name,)
        assert partitions(admin, name, 3) == 3
    else:  # tansu cannot add partitions: the topic stays usable as it is
        assert grown.unchanged == (name,)
        assert existing_partitions(admin)[name] == 1

    before = existing_partitions(admin)[name]
    assert ensure_topics(admin, [TopicSpec(name, 1)]).unchanged == (name,)
    assert existing_partitions(admin)[name] == before, "never shrinks"
