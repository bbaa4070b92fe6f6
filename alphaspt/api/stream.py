"""Fan-out of the Redis updates channel to WebSocket clients.

One subscription per API process (not one per browser tab): a background task reads
``alphaspt:updates`` and puts each message on every client's bounded queue. Messages are
forwarded unchanged (``{"type": "portfolio"|"order"|"rejection", ...}``); the broadcaster
adds two of its own:

- ``{"type": "resync"}`` whenever the subscription is (re)established. Pub/sub does not
  replay what was published while we were not subscribed, so a client reloads its snapshot
  through the REST endpoints when it sees this.
- ``{"type": "status", "redis": "down", "detail": ...}`` when the subscription broke; the
  task retries with capped exponential back-off, so Redis can come back without a restart.

A client whose queue fills up (it reads slower than updates arrive) is disconnected with
close code 1013 rather than silently skipping updates; it reconnects and resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alphaspt.api.metrics import ApiMetrics
from alphaspt.core.cache import UPDATES_CHANNEL

log = logging.getLogger(__name__)

RESYNC = json.dumps({"type": "resync"})


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    channel: str = UPDATES_CHANNEL
    client_queue: int = 1000
    """Messages buffered per client before it is disconnected as too slow."""
    max_clients: int = 200
    reconnect_initial: float = 0.2
    reconnect_max: float = 5.0


class Subscriber:
    """One WebSocket client's view of the stream."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=size)
        self.overflowed = asyncio.Event()

    def offer(self, message: str) -> bool:
        if self.overflowed.is_set():
            return False
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True


class UpdateBroadcaster:
    def __init__(
        self, client: aioredis.Redis, settings: StreamSettings, metrics: ApiMetrics
    ) -> None:
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="alphaspt-api-updates"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._metrics.stream_subscribed.set(0)

    def add(self) -> Subscriber | None:
        """A new subscriber, or ``None`` when the client limit is reached."""
        if len(self._subscribers) >= self._settings.max_clients:
            return None
        sub = Subscriber(self._settings.client_queue)
        self._subscribers.add(sub)
        self._metrics.stream_clients.set(len(self._subscribers))
        self.ensure_started()
        return sub

    def remove(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        self._metrics.stream_clients.set(len(self._subscribers))

    def _fanout(self, message: str) -> None:
        for sub in list(self._subscribers):
            if not sub.offer(message) and sub.overflowed.is_set():
                self._metrics.stream_dropped_clients.inc()
                self.remove(sub)

    async def _run(self) -> None:
        delay = self._settings.reconnect_initial
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._settings.channel)
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                    if msg is None:
                        continue
                    kind = msg.get("type")
                    if kind == "subscribe":
                        # Also seen after redis-py silently re-subscribed on a new
                        # connection: anything published in between is lost, so resync.
                        self.subscribed.set()
                        self._metrics.stream_subscribed.set(1)
                        delay = self._settings.reconnect_initial
                        self._fanout(RESYNC)
                    elif kind == "message":
                        data = msg["data"]
                        text = data.decode("utf-8") if isinstance(data, bytes) else str(data)
                        self._metrics.stream_messages.inc()
                        self._fanout(text)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                self._metrics.stream_subscribed.set(0)
                log.warning("updates subscription lost (%s); retrying in %.1fs",
                            type(exc).__name__, delay)
                self._fanout(json.dumps({
                    "type": "status", "redis": "down",
                    "detail": "Redis is unreachable; live updates resume when it is back",
                }))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.reconnect_max)
            finally:
                with contextlib.suppress(Exception):
                    # Any: redis-py types aclose() from 8.2 on, not before (redis>=5.0)
                    await cast(Any, pubsub).aclose()
