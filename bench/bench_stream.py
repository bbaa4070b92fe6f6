"""Throughput of a StreamProcessor stage against a bare consume→produce loop, same broker.

Baseline, measured in the same run on the same Apache Kafka broker: a bare confluent-kafka
loop that consumes raw bytes and produces them to another topic (no decoding, no
transactions, offsets auto-committed). Then the same N Tick events through a
``StreamProcessor`` that decodes each event, re-encodes a new one, and checkpoints every
0.2 s, (a) with one changelog key per symbol (as the feature engine keeps) and (b)
stateless. Prints msgs/s and the ratio.

    scripts/fetch-kafka.sh && python bench/bench_stream.py [--n 50000] [--kafka tansu]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import Consumer, Producer

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Event, Tick
from alphaspt.core.streaming import (
    EventProducer,
    Output,
    ProcessorConfig,
    StreamProcessor,
    TopicSpec,
    admin_client,
    ensure_topics,
)

BATCH = 2000


class Copy(StreamProcessor):
    stage = "bench-copy"

    def __init__(self, kafka: KafkaConfig, config: ProcessorConfig, src: str, dst: str,
                 n: int) -> None:
        super().__init__(kafka, config, {src: Codec(Tick)})
        self.dst = dst
        self.n = n
        self.count = 0
        self.per_symbol: dict[str, int] = {}

    def process(self, topic: str, event: Event) -> Iterable[Output]:
        assert isinstance(event, Tick)
        self.count += 1
        if self.count >= self.n:
            self.stop()
        if self.stateful:  # one key per symbol, as the feature engine keeps
            self.per_symbol[event.symbol] = self.per_symbol.get(event.symbol, 0) + 1
            self.touch(event.symbol)
        yield Output(self.dst, event.symbol, Tick(
            event_id=f"c-{event.event_id}", exchange_ts=event.exchange_ts, symbol=event.symbol,
            price=event.price))

    def state_value(self, task: int, key: str) -> bytes | None:
        count = self.per_symbol.get(key)
        return None if count is None else str(count).encode()


def fill(kafka: KafkaConfig, topic: str, n: int) -> None:
    producer = EventProducer(kafka, **{"linger.ms": 20})
    for i in range(n):
        producer.send(topic, f"S{i % 8}", Tick(event_id=str(i), exchange_ts=i,
                                               symbol=f"S{i % 8}", price=100.0 + i % 50))
    producer.flush(120)


def bare_loop(kafka: KafkaConfig, src: str, dst: str, n: int) -> float:
    consumer = Consumer({**kafka.consumer_config(), "group.id": f"bare-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    producer = Producer({**kafka.client_config(), "linger.ms": 2})
    consumer.subscribe([src])
    done = 0
    started = None
    while done < n:
        batch = consumer.consume(500, 1.0)
        if started is None and batch:
            started = time.perf_counter()
        for m in batch:
            if m.error() is None:
                producer.produce(dst, m.value(), m.key())
                done += 1
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return n / elapsed


def stage_loop(kafka: KafkaConfig, src: str, dst: str, n: int, *, state: str | None) -> float:
    """Throughput from the first message consumed (group join and restore excluded, as
    for the baseline)."""
    tag = uuid.uuid4().hex[:8]
    stage = Copy(kafka, ProcessorConfig(
        group_id=f"stage-{tag}", batch_size=BATCH,
        changelog_topic=f"{state}-{tag}" if state else None), src, dst, n)
    first: list[float] = []
    original = stage.process

    def timed(topic: str, event: Event) -> Iterable[Output]:
        if not first:
            first.append(time.perf_counter())
        return original(topic, event)

    stage.process = timed  # type: ignore[method-assign]
    stage.run(max_seconds=600)
    return stage.count / (time.perf_counter() - first[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--kafka", choices=("apache", "tansu"), default="apache")
    parser.add_argument("--batch", type=int, default=BATCH)
    args = parser.parse_args()
    globals()["BATCH"] = args.batch
    if args.kafka == "apache":
        from alphaspt.local.apache_kafka import ApacheKafka

        broker = ApacheKafka()
        broker.start()
        bootstrap = broker.bootstrap_servers
        stop = broker.stop
    else:
        import tempfile
        from pathlib import Path

        from alphaspt.local.servers import Tansu

        tansu = Tansu(Path(tempfile.mkdtemp()))
        tansu.start()
        bootstrap, stop = tansu.bootstrap_servers, tansu.stop
    try:
        kafka = KafkaConfig(bootstrap_servers=bootstrap)
        src, state = "bench.in", "bench.changelog"
        outs = ["bench.out.bare", "bench.out.state", "bench.out.stateless"]
        ensure_topics(admin_client(kafka), [TopicSpec(src, 3),
                                            TopicSpec("bench.in.dlq", 1),
                                            *(TopicSpec(o, 3) for o in outs)])
        fill(kafka, src, args.n)
        bare = bare_loop(kafka, src, outs[0], args.n)
        stateful = stage_loop(kafka, src, outs[1], args.n, state=state)
        stateless = stage_loop(kafka, src, outs[2], args.n, state=None)
        print(f"{args.n} Tick events on {args.kafka}, batch {args.batch}, 3 partitions")
        print(f"  bare consume->produce (baseline)     {bare:9,.0f} msg/s   ratio 1.00")
        print(f"  StreamProcessor, per-key changelog   {stateful:9,.0f} msg/s   "
              f"ratio {stateful / bare:.2f}")
        print(f"  StreamProcessor, stateless           {stateless:9,.0f} msg/s   "
              f"ratio {stateless / bare:.2f}")
    finally:
        stop()


if __name__ == "__main__":
    main()
