"""Kafka I/O on confluent-kafka: topics, producers, and the StreamProcessor base."""

from alphaspt.core.streaming.admin import TopicSpec, admin_client, ensure_topics
from alphaspt.core.streaming.processor import Output, ProcessorConfig, StreamProcessor
from alphaspt.core.streaming.producer import DeliveryTracker, EventProducer

__all__ = [
    "DeliveryTracker",
    "EventProducer",
    "Output",
    "ProcessorConfig",
    "StreamProcessor",
    "TopicSpec",
    "admin_client",
    "ensure_topics",
]
