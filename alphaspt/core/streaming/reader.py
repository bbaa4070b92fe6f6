"""Reading a topic from the beginning to its end without joining a group.

Used to load state snapshots and to rebuild read models from the log. Some Kafka-API
brokers (tansu) have been seen reporting a partition's high watermark as the last
batch's base offset, so after reaching the reported end the reader keeps polling until
the partition stays quiet for ``quiet`` seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from alphaspt.core.config import KafkaConfig
from alphaspt.exceptions import InfrastructureUnavailable


def _reader(kafka: KafkaConfig) -> Consumer:
    """A consumer of its own (no group membership is used) that reports partition ends."""
    return Consumer({
        **kafka.client_config(),
        "group.id": f"alphaspt-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    """The partitions of ``topic`` (none if it does not exist)."""
    try:
        metadata = consumer.list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise InfrastructureUnavailable(f"metadata for {topic}: {exc}") from exc
    tmeta = metadata.topics.get(topic)
    if tmeta is None or tmeta.error is not None:
        return []
    return list(tmeta.partitions)


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float) -> tuple[int, int]:
    """``(low, high)`` of ``tp``, asking again for up to ``timeout`` s while the broker says
    something retriable (a partition whose leader is still being elected, on a topic just
    created or a broker just restarted)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            retriable = isinstance(err, KafkaError) and (err.retriable() or err.code() in (
                KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE))
            if not retriable or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def read_to_end(
    kafka: KafkaConfig, topic: str, *, timeout: float = 30.0, quiet: float = 0.3
) -> Iterator[Message]:
    """Yield the committed messages of ``topic`` up to its end when called (order kept
    within each partition), and whatever else arrives in the following ``quiet`` seconds."""
    consumer = _reader(kafka)
    try:
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in _partitions(consumer, topic)]
        if not parts:
            return
        highs = {}
        for tp in parts:
            _low, high = _watermarks(consumer, tp, timeout)
            highs[tp.partition] = high
        pending = {p for p, high in highs.items() if high > 0}
        if not pending:
            return
        consumer.assign(parts)
        deadline = time.monotonic() + timeout
        reached: float | None = None
        positions: dict[int, int] = {}
        at_eof: set[int] = set()
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.1):
                err = msg.error()
                partition = msg.partition() or 0
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(partition)
                        continue
                    raise InfrastructureUnavailable(f"reading {topic}: {err}")
                positions[partition] = (msg.offset() or 0) + 1
                yield msg
            done = {p for p in pending if p in at_eof or positions.get(p, 0) >= highs[p]}
            if done == pending:
                # Past the ends seen at the start; messages produced since are not waited
                # for, but keep reading ``quiet`` seconds in case the broker under-reported.
                reached = reached if reached is not None else time.monotonic()
                if time.monotonic() - reached >= quiet:
                    return
        raise InfrastructureUnavailable(f"reading {topic} to its end took over {timeout}s")
    finally:
        consumer.close()


def read_latest(kafka: KafkaConfig, topic: str, key: str) -> bytes | None:
    """The value of the newest message with ``key`` in ``topic`` (a compacted state topic)."""
    wanted = key.encode()
    latest: bytes | None = None
    for msg in read_to_end(kafka, topic):
        if msg.key() == wanted:
            latest = msg.value()
    return latest


def read_tail(kafka: KafkaConfig, topic: str, count: int, *,
              timeout: float = 30.0) -> list[Message]:
    """The last ``count`` messages (at most) of each partition of ``topic``."""
    consumer = _reader(kafka)
    try:
        parts = []
        for p in _partitions(consumer, topic):
            low, high = _watermarks(consumer, TopicPartition(topic, p), timeout)
            if high > low:
                parts.append(TopicPartition(topic, p, max(low, high - count)))
        if not parts:
            return []
        consumer.assign(parts)
        pending = {tp.partition for tp in parts}
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition() or 0)
                        continue
                    raise InfrastructureUnavailable(f"reading {topic}: {err}")
                out.append(msg)
        return out
    finally:
        consumer.close()
