"""Producing events outside a stream stage (feeds, the operator's control notices)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Event, encode
from alphaspt.exceptions import InfrastructureUnavailable

log = logging.getLogger(__name__)


class DeliveryTracker:
    """A delivery-report callback that counts what the broker acknowledged or refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.delivered = 0
        self._failures: list[str] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self.delivered += 1
            else:
                self._failures.append(f"{msg.topic()}: {err.str()}")
                log.error("delivery to %s failed: %s", msg.topic(), err.str())

    def take_failures(self) -> list[str]:
        with self._lock:
            failures, self._failures = self._failures, []
        return failures


class EventProducer:
    """An idempotent producer of events with delivery reports; ``flush`` raises on loss."""

    def __init__(self, kafka: KafkaConfig, **extra: Any) -> None:
        self._producer: Producer | None = Producer(
            {
                **kafka.client_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                **extra,
            }
        )
        self.delivery = DeliveryTracker()

    def send(self, topic: str, key: str | None, event: Event) -> None:
        self.send_raw(topic, key, encode(event))

    def send_raw(self, topic: str, key: str | bytes | None, value: bytes | None,
                 headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        producer = self._client()
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers,
                                 on_delivery=self.delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    def _client(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("producer used after close()")
        return self._producer

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._client().flush(timeout)
        failures = self.delivery.take_failures()
        if remaining or failures:
            raise InfrastructureUnavailable(
                f"{remaining} messages undelivered after {timeout}s; failures: {failures[:5]}"
            )

    def close(self) -> None:
        """Deliver what is queued (10 s at most), then release the client, so its
        connections close now rather than whenever the object is collected."""
        producer = self._producer
        if producer is None:
            return
        producer.flush(10)
        self._producer = None
