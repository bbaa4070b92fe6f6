"""Control notices on ``control.commands``: kill switch, pause/resume, config changed.

Each notice is flushed before :meth:`ControlPublisher.publish` returns, so a kill switch is
on the log (acknowledged by all in-sync replicas) when the handler finishes; the event id
is stable for one resource generation, so a retried publish is de-duplicated downstream.
"""

from __future__ import annotations

import asyncio
import threading

from alphaspt.core.events import Command, Control, Topics, now_ns, stable_id
from alphaspt.core.streaming import EventProducer

ISSUER = "alphaspt-operator"


def control_event(command: Command, kind: str, namespace: str, name: str, generation: int,
                  *, value: bool = True) -> Control:
    now = now_ns()
    return Control(
        event_id=stable_id("control", command.value, kind, namespace, name, generation, value),
        exchange_ts=now,
        ingest_ts=now,
        command=command,
        target_kind=kind,
        target=name,
        value=value,
        issued_by=ISSUER,
    )


class ControlPublisher:
    def __init__(self, producer: EventProducer, *, timeout: float = 5.0) -> None:
        self._producer = producer
        self._timeout = timeout
        self._lock = threading.Lock()

    async def publish(self, event: Control) -> None:
        """Send and flush; raises InfrastructureUnavailable when the broker did not ack."""
        await asyncio.to_thread(self._send, event)

    def _send(self, event: Control) -> None:
        with self._lock:
            self._producer.send(Topics.CONTROL, event.target, event)
            self._producer.flush(self._timeout)

    def close(self) -> None:
        self._producer.close()
