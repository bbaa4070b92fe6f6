"""Topic management through the Kafka admin API: create what is missing, grow, never shrink."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # type: ignore[attr-defined]

from alphaspt.core.config import KafkaConfig
from alphaspt.exceptions import InfrastructureUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicChanges:
    created: tuple[str, ...] = ()
    grown: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


def admin_client(kafka: KafkaConfig) -> AdminClient:
    return AdminClient(dict(kafka.client_config()))


def existing_partitions(admin: AdminClient, timeout: float = 10.0) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise InfrastructureUnavailable(f"Kafka metadata request failed: {exc}") from exc
    return {name: len(t.partitions) for name, t in metadata.topics.items() if not t.error}


def ensure_topics(
    admin: AdminClient,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    timeout: float = 15.0,
) -> TopicChanges:
    """Create missing topics and add partitions where a spec asks for more.

    Never deletes a topic and never shrinks one (Kafka cannot, and keys would move).
    Idempotent: a topic created concurrently by someone else counts as existing.
    """
    wanted = {s.name: s for s in specs}
    have = existing_partitions(admin, timeout)
    to_create = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=replication_factor,
                 config=dict(s.config))
        for name, s in wanted.items()
        if name not in have
    ]
    to_grow = [
        NewPartitions(name, s.partitions)
        for name, s in wanted.items()
        if name in have and have[name] < s.partitions
    ]
    created: list[str] = []
    grown: list[str] = []
    if to_create:
        for name, fut in admin.create_topics(to_create, operation_timeout=timeout).items():
            try:
                fut.result(timeout)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise InfrastructureUnavailable(f"creating topic {name}: {exc}") from exc
    if to_grow:
        for name, fut in admin.create_partitions(to_grow, operation_timeout=timeout).items():
            try:
                fut.result(timeout)
                grown.append(name)
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError._UNSUPPORTED_FEATURE:
                    # e.g. tansu: the topic exists and works with the partitions it has.
                    log.warning("%s keeps %d partitions (wanted %d): the broker cannot add "
                                "partitions", name, have[name], wanted[name].partitions)
                    continue
                raise InfrastructureUnavailable(f"adding partitions to {name}: {exc}") from exc
    if created or grown:
        log.info("topics created=%s grown=%s", created, grown)
    unchanged = tuple(n for n in wanted if n not in created and n not in grown)
    return TopicChanges(tuple(created), tuple(grown), unchanged)
