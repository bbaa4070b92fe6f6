"""Topics: created when missing, grown where the broker can, never shrunk."""

from __future__ import annotations

import os

import pytest

from alphaspt.core.config import KafkaConfig
from alphaspt.core.streaming import TopicSpec, admin_client, ensure_topics
from alphaspt.core.streaming.admin import existing_partitions

pytestmark = pytest.mark.integration


def test_create_grow_and_never_shrink(kafka: KafkaConfig, unique: str) -> None:
    admin = admin_client(kafka)
    name = f"admin-{unique}"
    first = ensure_topics(admin, [TopicSpec(name, 1)])
    assert first.created == (name,)
    assert ensure_topics(admin, [TopicSpec(name, 1)]).unchanged == (name,)

    grown = ensure_topics(admin, [TopicSpec(name, 3)])
    if os.environ.get("ALPHASPT_TEST_KAFKA", "tansu") == "apache":
        assert grown.grown == (name,)
        assert existing_partitions(admin)[name] == 3
    else:  # tansu cannot add partitions: the topic stays usable as it is
        assert grown.unchanged == (name,)
        assert existing_partitions(admin)[name] == 1

    before = existing_partitions(admin)[name]
    assert ensure_topics(admin, [TopicSpec(name, 1)]).unchanged == (name,)
    assert existing_partitions(admin)[name] == before, "never shrinks"
