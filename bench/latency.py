"""End-to-end latency of the whole pipeline beside the broker's own round trip.

``alphaspt up --feed replay --speed S`` (the chaos harness's :class:`~tests.chaos.harness.Up`:
its own state dir, ports and broker) replays a seeded random walk at ``rate`` ticks/s
through both example strategies. Measured at the same time, on the same broker and from
the same process:

- **tick → order visible**: an order's arrival on ``orders.submitted`` (a
  ``read_uncommitted`` consumer with ``fetch.wait.max.ms`` 5) minus the wall time the
  feed produced the tick it came from (the tick's ``ingest_ts``; an order carries its
  tick's ``exchange_ts`` and symbol);
- **tick → portfolio in Redis**: the portfolio manager's publication of that order on
  the Redis updates channel (it is written to Redis in the same MULTI/EXEC) minus the same
  tick time;
- **per hop** (where the time goes): for every order, the arrival at the same consumer of
  its tick's features (feature engine, from the tick's ``ingest_ts``), of its signal
  (strategy runner, from the features' arrival), of the risk manager's approval and of the
  order itself (trading engine), each from the arrival before it;
- **broker round trip** (the side probe): a message produced every ``PROBE_EVERY`` s to
  ``bench.probe`` and consumed by the same kind of consumer, arrival minus send time.

The ratio of the pipeline's p99 to the round trip's p99 is the figure with a goal.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import redis
from confluent_kafka import Consumer, Producer

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Order, Tick, Topics
from alphaspt.core.streaming import TopicSpec, admin_client, ensure_topics


class _Approval(msgspec.Struct):
    event_id: str


PROBE = "bench.probe"
PROBE_EVERY = 0.02
"""Seconds between probe messages. Every 5 ms, the probe alone (one produce request each)
took an idle embedded broker from 5 % to 45 % of a core and slowed what it measures."""


HOPS = ("feature-engine", "strategy-runner", "risk-manager", "trading-engine")


class _Keyed(msgspec.Struct):
    """What the observer reads of features and signals (the rest is skipped, not parsed)."""

    symbol: str
    exchange_ts: int
    event_id: str


class Observer:
    """Side consumer of ticks, orders and the probe; Redis subscriber; probe producer."""

    def __init__(self, kafka: KafkaConfig, redis_url: str) -> None:
        self.kafka = kafka
        self.redis_url = redis_url
        self.tick_times: dict[tuple[str, int], int] = {}
        self.order_ticks: dict[str, tuple[str, int]] = {}
        self.order_latency: list[float] = []
        self.redis_latency: list[float] = []
        self.probe_latency: list[float] = []
        self.arrivals: dict[tuple[str, int], int] = {}
        """(symbol, exchange_ts) of a tick → when its features arrived."""
        self.signal_arrivals: dict[str, tuple[tuple[str, int], int]] = {}
        self.approval_arrivals: dict[str, int] = {}
        self.hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        ensure_topics(admin_client(self.kafka), [TopicSpec(PROBE, 1)])
        for target in (self._consume, self._probe, self._redis):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _consume(self) -> None:
        consumer = Consumer({**self.kafka.client_config(),
                             "group.id": f"bench-latency-{uuid.uuid4().hex[:8]}",
                             "auto.offset.reset": "latest", "enable.auto.commit": False,
                             "fetch.wait.max.ms": 5, "isolation.level": "read_uncommitted"})
        consumer.subscribe([Topics.TICKS, Topics.ORDERS_SUBMITTED, PROBE, Topics.FEATURES,
                            Topics.SIGNALS_GENERATED, Topics.SIGNALS_VALIDATED])
        ticks, orders = Codec(Tick), Codec(Order)
        keyed = msgspec.json.Decoder(_Keyed)
        approval = msgspec.json.Decoder(_Approval)
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.05):
                    now = time.time_ns()
                    if msg.error() is not None:
                        continue
                    topic = msg.topic()
                    if topic == PROBE:
                        self.probe_latency.append((now - int(msg.value() or b"0")) / 1e6)
                    elif topic == Topics.TICKS:
                        tick = ticks.decode(msg.value())
                        self.tick_times[(tick.symbol, tick.exchange_ts)] = tick.ingest_ts
                    elif topic == Topics.FEATURES:
                        f = keyed.decode(msg.value() or b"")
                        self.arrivals[(f.symbol, f.exchange_ts)] = now
                    elif topic == Topics.SIGNALS_GENERATED:
                        sig = keyed.decode(msg.value() or b"")
                        self.signal_arrivals[sig.event_id] = ((sig.symbol, sig.exchange_ts), now)
                    elif topic == Topics.SIGNALS_VALIDATED:
                        self.approval_arrivals[approval.decode(msg.value() or b"").event_id] = now
                    else:
                        order = orders.decode(msg.value())
                        key = (order.symbol, order.exchange_ts)
                        self.order_ticks[order.client_order_id] = key
                        sent = self.tick_times.get(key)
                        if sent is not None:
                            self.order_latency.append((now - sent) / 1e6)
                            self._hops(sent, order.signal_id, now)
        finally:
            consumer.close()

    def _hops(self, tick_sent: int, signal_id: str, order_seen: int) -> None:
        signal = self.signal_arrivals.get(signal_id)
        approved = self.approval_arrivals.get(signal_id)
        features = self.arrivals.get(signal[0]) if signal else None
        if signal is None or approved is None or features is None:
            return
        for hop, (start, end) in zip(HOPS, ((tick_sent, features), (features, signal[1]),
                                            (signal[1], approved), (approved, order_seen)),
                                     strict=True):
            self.hops[hop].append((end - start) / 1e6)

    def _probe(self) -> None:
        producer = Producer({**self.kafka.client_config(), "linger.ms": 0, "acks": "all"})
        while not self._stop.wait(PROBE_EVERY):
            producer.produce(PROBE, str(time.time_ns()).encode())
            producer.poll(0)
        producer.flush(5)

    def _redis(self) -> None:
        from alphaspt.core.cache import UPDATES_CHANNEL

        client = redis.Redis.from_url(self.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(UPDATES_CHANNEL)
        while not self._stop.is_set():
            msg = pubsub.get_message(timeout=0.05)
            if msg is None:
                continue
            now = time.time_ns()
            try:
                body = json.loads(msg["data"])
            except (TypeError, ValueError):
                continue
            coid = body.get("client_order_id") if body.get("type") == "order" else None
            key = self.order_ticks.get(coid) if coid else None
            sent = self.tick_times.get(key) if key else None
            if sent is not None:
                self.redis_latency.append((now - sent) / 1e6)
        pubsub.close()


def run(rate: int, seconds: float, broker: str) -> dict[str, Any]:
    """One ``alphaspt up`` at ``rate`` ticks/s for ``seconds``; latency samples in ms."""
    from tests.chaos.harness import Up, write_manifests, write_replay

    workdir = Path(tempfile.mkdtemp(prefix="alphaspt-bench-latency-"))
    replay = workdir / "replay.jsonl"
    ticks = int(rate * seconds)
    write_replay(replay, ticks, spacing_ms=20.0)  # 50 ticks/s of event time
    write_manifests(workdir / "manifests")
    up = Up(workdir, broker, replay, speed=rate / 50.0)
    observer: Observer | None = None
    try:
        up.start()
        observer = Observer(up.kafka, up.urls["redis"])
        observer.start()
        deadline = time.monotonic() + seconds + 60
        # the replay starts after "ready"; wait until its ticks have played and drained
        seen = 0
        while time.monotonic() < deadline:
            time.sleep(2)
            up.read()
            if len(observer.tick_times) >= ticks and len(observer.tick_times) == seen:
                break
            seen = len(observer.tick_times)
        time.sleep(3)
    finally:
        if observer is not None:
            observer.stop()
        up.stop()
    assert observer is not None
    return {"rate": rate, "ticks_seen": len(observer.tick_times),
            "orders": len(observer.order_latency), "redis": len(observer.redis_latency),
            "order_ms": observer.order_latency, "redis_ms": observer.redis_latency,
            "probe_ms": observer.probe_latency, "hops_ms": observer.hops}
