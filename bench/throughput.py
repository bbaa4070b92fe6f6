"""Throughput of every stream stage against a bare consume→produce loop, same broker.

Parent side (:func:`prepare`, :func:`measure`): fills ``market.ticks`` with ``n`` ticks of
the example symbols (a seeded random walk, 20 ms apart in event time) and
``market.features`` with the features of those ticks (computed offline by the same
:class:`~alphaspt.strategies.FeatureCalculator`), seeds PostgreSQL with a strategy and a
RiskProfile, then runs the candidates interleaved, each in its own pinned process.

Child side (``python -m bench.throughput '<json>'``): one candidate, timed from the first
input message it handles to the end of its final flush/checkpoint (group join, restore and
client start-up excluded, for the stages and the baselines alike):

- ``bare``: a confluent-kafka loop consuming raw bytes and producing each one to another
  topic with the stages' producer settings (acks=all, idempotent), no decoding, no
  state, offsets auto-committed: the baseline of every stage;
- ``bare-features``: the same loop on ``market.features`` (the strategy runner's input);
- ``bare-txn``: the bare loop in transactions of 2,000 messages with the offsets in the
  transaction (read_committed): a second reference;
- ``feature-engine``, ``strategy-runner``, ``risk-manager``, ``trading-engine``,
  ``portfolio-manager``: the real stage classes wired as ``alphaspt worker`` wires them
  (:mod:`alphaspt.workers.registry`), with their changelog checkpoints every 0.2 s, their
  configuration from PostgreSQL and the portfolio's Redis. Risk, trading and portfolio
  consume the ticks (their market data); the strategy runner consumes the features with a
  momentum band so wide (threshold 0.5) that it never signals, so it never holds a symbol
  back for an outcome no stage will send in this benchmark.

A candidate counts only the input messages below the end offsets recorded after the fill
(the feature engine appends to ``market.features`` while the benchmark runs) and stops
when it has seen all ``n``; anything else it consumed meanwhile counts as processed too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from alphaspt.core.config import KafkaConfig
from bench.harness import Window

IST = timezone(timedelta(hours=5, minutes=30))
SYMBOLS = ("RELIANCE", "TCS", "INFY", "SBIN", "HDFCBANK")
PARTITIONS = 3
BARE_OUT = "bench.bare.out"
NAMESPACE = "bench"
STRATEGY = "bench-momentum"
PROFILE: dict[str, Any] = {
    "maxOrderQuantity": 100, "maxOrderValue": 1_000_000, "priceBandPercent": 5,
    "maxPositionPerInstrument": 60, "maxGrossExposure": 50_000_000, "maxDailyLoss": 1_000_000,
    "maxOrdersPerSecond": 10, "maxOrdersPerMinute": 600,
    "tradingWindow": {"start": "00:00", "end": "23:59:59"},
}
STAGES = ("feature-engine", "strategy-runner", "risk-manager", "trading-engine",
          "portfolio-manager")
CANDIDATES = ("bare", "bare-txn", "bare-features", *STAGES)
BASELINE = {stage: "bare" for stage in STAGES} | {"strategy-runner": "bare-features"}


# -- parent side ----------------------------------------------------------------------------

def ticks(n: int, seed: int = 7) -> Iterable[Any]:
    from alphaspt.core.events import Tick, stable_id

    rng = random.Random(seed)
    prices = {"RELIANCE": 1400.0, "TCS": 4100.0, "INFY": 1550.0, "SBIN": 800.0,
              "HDFCBANK": 1700.0}
    volume = dict.fromkeys(SYMBOLS, 0)
    start = int(datetime(2025, 1, 7, 9, 15, tzinfo=IST).timestamp() * 1e9)
    for i in range(n):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        prices[symbol] = max(1.0, round((prices[symbol] * (1 + rng.gauss(0, 4e-4))) / 0.05)
                             * 0.05)
        qty = rng.randint(1, 50)
        volume[symbol] += qty
        ts = start + i * 20_000_000
        yield Tick(event_id=stable_id("bench", i), exchange_ts=ts, ingest_ts=ts,
                   symbol=symbol, price=prices[symbol], quantity=qty, volume=volume[symbol])


def end_offsets(kafka: KafkaConfig, topic: str) -> dict[int, int]:
    consumer = Consumer({**kafka.client_config(), "group.id": "alphaspt-bench-offsets"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
    finally:
        consumer.close()


def prepare(kafka: KafkaConfig, n: int, postgres_url: str) -> dict[str, dict[int, int]]:
    """Topics, input data and configuration; returns the end offsets of the inputs."""
    from alphaspt.core.db import ConfigRepository, create_engine, migrate
    from alphaspt.core.events import Topics
    from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
    from alphaspt.core.streaming import EventProducer, TopicSpec, admin_client, ensure_topics
    from alphaspt.operator.planning import shared_topics
    from alphaspt.strategies import FeatureCalculator

    ensure_topics(admin_client(kafka), [
        *(TopicSpec(t.name, t.partitions, dict(t.config))
          for t in shared_topics(PARTITIONS, NAMESPACE)),
        TopicSpec(BARE_OUT, PARTITIONS)])
    producer = EventProducer(kafka, **{"linger.ms": 20})
    calc = FeatureCalculator()
    for tick in ticks(n):
        producer.send(Topics.TICKS, tick.symbol, tick)
        features = calc.update(tick)
        if features is not None:
            producer.send(Topics.FEATURES, features.symbol, features)
    producer.flush(300)
    producer.close()

    async def configure() -> None:
        await migrate(postgres_url)
        repo = ConfigRepository(create_engine(postgres_url))
        try:
            await repo.upsert_risk_profile(NAMESPACE, "bench",
                                           RiskProfileSpec.model_validate(PROFILE))
            await repo.upsert_strategy(NAMESPACE, STRATEGY, TradingStrategySpec.model_validate({
                "strategy": "momentum", "instruments": list(SYMBOLS), "mode": "Paper",
                "riskProfileRef": "bench", "desiredState": "Running",
                "params": {"quantity": 10, "threshold": 0.5, "allowShort": True}}))
        finally:
            await repo.close()

    asyncio.run(configure())
    return {Topics.TICKS: end_offsets(kafka, Topics.TICKS),
            Topics.FEATURES: end_offsets(kafka, Topics.FEATURES)}


# -- child side -----------------------------------------------------------------------------

def bare(kafka: KafkaConfig, topic: str, window: Window, *, transactional: bool) -> None:
    tag = uuid.uuid4().hex[:8]
    consumer = Consumer({**kafka.consumer_config(), "group.id": f"bench-bare-{tag}",
                         "auto.offset.reset": "earliest", "enable.partition.eof": False,
                         **({"enable.auto.commit": False, "isolation.level": "read_committed"}
                            if transactional else {})})
    producer = Producer({**kafka.client_config(), "acks": "all", "enable.idempotence": True,
                         "linger.ms": 1,
                         **({"transactional.id": f"bench-{tag}"} if transactional else {})})
    if transactional:
        producer.init_transactions(30)
    consumer.subscribe([topic])
    done = False
    try:
        while not done:
            batch = consumer.consume(2000, 0.02)
            if not batch:
                continue
            if transactional:
                producer.begin_transaction()
            for m in batch:
                if m.error() is not None:
                    continue
                while True:
                    try:
                        producer.produce(BARE_OUT, m.value(), m.key())
                        break
                    except BufferError:
                        producer.poll(0.05)
                done = window.see(m.topic() or "", m.partition() or 0, m.offset() or 0) or done
            if transactional:
                positions = consumer.position(consumer.assignment())
                producer.send_offsets_to_transaction(positions,
                                                     consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
            else:
                producer.poll(0)
        producer.flush(60)
    finally:
        result = window.result()
        consumer.close()
    print(json.dumps(result))


def stage(kafka: KafkaConfig, name: str, window: Window, postgres: str, redis: str) -> None:
    from pydantic import SecretStr

    from alphaspt.core.cache import PortfolioCacheWriter
    from alphaspt.core.config import PostgresConfig, RedisConfig, Settings
    from alphaspt.core.streaming import StreamProcessor
    from alphaspt.workers.common import ConfigSource, stage_config
    from alphaspt.workers.feature_engine import FeatureEngine
    from alphaspt.workers.portfolio_manager import PortfolioManager
    from alphaspt.workers.risk_manager import RiskManager
    from alphaspt.workers.strategy_runner import StrategyRunner
    from alphaspt.workers.trading_engine import TradingEngine

    settings = Settings(namespace=NAMESPACE, kafka=kafka, clock="event",
                        postgres=PostgresConfig(url=SecretStr(postgres)),
                        redis=RedisConfig(url=SecretStr(redis)))
    tag = uuid.uuid4().hex[:8]
    config = stage_config(settings, name, group_id=f"bench-{name}-{tag}",
                          changelog_topic=f"bench.{name}.{tag}.changelog")
    source = ConfigSource(postgres, NAMESPACE)
    processor: StreamProcessor
    if name == "feature-engine":
        processor = FeatureEngine(settings, config)
    elif name == "strategy-runner":  # as the registry wires it: polls of 200
        processor = StrategyRunner(settings, stage_config(
            settings, name, group_id=f"bench-{name}-{tag}", batch_size=200,
            changelog_topic=f"bench.{name}.{tag}.changelog"), source, STRATEGY)
    elif name == "risk-manager":
        processor = RiskManager(settings, config, source)
    elif name == "trading-engine":
        processor = TradingEngine(settings, config, source)
    else:
        processor = PortfolioManager(settings, config, source,
                                     PortfolioCacheWriter.from_url(redis))
    handle = processor._handle_batch
    shutdown = processor._shutdown
    result: dict[str, Any] = {}

    def handle_batch(messages: list[Message]) -> None:
        # Each message seen as the bare loop sees it (one call per message, in a loop of
        # the harness's own), not through a wrapper of ``process``: that cost the stages
        # a Python frame per message the baselines do not pay.
        done = False
        for m in messages:
            if m.error() is None:
                done = window.see(m.topic() or "", m.partition() or 0, m.offset() or 0) or done
        handle(messages)
        if done:
            processor.stop()

    def timed_shutdown() -> None:  # entered right after the final checkpoint
        result.update(window.result())
        shutdown()

    processor._handle_batch = handle_batch  # type: ignore[method-assign]
    processor._shutdown = timed_shutdown  # type: ignore[method-assign]
    gc.freeze()  # as alphaspt.workers.registry.run_stage does
    processor.run(max_seconds=600)
    print(json.dumps(result))


def main() -> None:
    from bench.harness import pin

    args = json.loads(sys.argv[1])
    pin(args.get("core"))
    kafka = KafkaConfig(bootstrap_servers=args["bootstrap"])
    candidate = args["candidate"]
    ends = {int(p): o for p, o in args["ends"][args["topic"]].items()}
    window = Window(args["topic"], ends)
    if candidate.startswith("bare"):
        bare(kafka, args["topic"], window, transactional=candidate == "bare-txn")
    else:
        stage(kafka, candidate, window, args["postgres"], args["redis"])


def input_topic(candidate: str) -> str:
    from alphaspt.core.events import Topics

    return Topics.FEATURES if candidate in ("bare-features", "strategy-runner") \
        else Topics.TICKS


if __name__ == "__main__":
    main()
