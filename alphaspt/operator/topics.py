"""Topics through the Kafka admin API, off the event loop: create, grow, never shrink."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from alphaspt.core.streaming import TopicSpec, ensure_topics
from alphaspt.exceptions import InfrastructureUnavailable
from alphaspt.operator.planning import TopicPlan


class TopicManager:
    """Ensures planned topics exist. Remembers what it has seen, so that reconciling many
    strategies costs one metadata request; ``refresh=True`` asks the broker again (drift)."""

    def __init__(self, admin: AdminClient, *, replication_factor: int = 1,
                 timeout: float = 10.0) -> None:
        self._admin = admin
        self._replication_factor = replication_factor
        self._timeout = timeout
        self._known: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def ensure(self, topics: Iterable[TopicPlan], *, refresh: bool = False
                     ) -> tuple[str, ...]:
        """Create what is missing (or has too few partitions); returns the created names."""
        wanted = {t.name: t for t in topics}
        async with self._lock:
            if not refresh and all(self._known.get(n, 0) >= t.partitions
                                   for n, t in wanted.items()):
                return ()
            changes = await asyncio.to_thread(
                ensure_topics, self._admin,
                [TopicSpec(t.name, t.partitions, dict(t.config)) for t in wanted.values()],
                replication_factor=self._replication_factor, timeout=self._timeout,
            )
            for name, t in wanted.items():
                self._known[name] = max(self._known.get(name, 0), t.partitions)
            return changes.created

    async def delete(self, names: Iterable[str]) -> tuple[str, ...]:
        """Delete topics (their data is gone); a topic that does not exist is fine."""
        names = list(names)
        async with self._lock:
            for name in names:
                self._known.pop(name, None)
            return await asyncio.to_thread(self._delete, names)

    def _delete(self, names: list[str]) -> tuple[str, ...]:
        if not names:
            return ()
        deleted: list[str] = []
        try:
            futures = self._admin.delete_topics(names, operation_timeout=self._timeout)
        except KafkaException as exc:
            raise InfrastructureUnavailable(f"deleting topics {names}: {exc}") from exc
        for name, future in futures.items():
            try:
                future.result(self._timeout)
                deleted.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise InfrastructureUnavailable(f"deleting topic {name}: {exc}") from exc
        return tuple(deleted)
