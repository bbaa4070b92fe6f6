"""The six stages end to end on real servers, from a replay file, via ``alphaspt up``.

The expected portfolio comes from an oracle that runs the same pure core (features,
strategies, risk, paper broker, ledger) in-process over the same file in event order.
Kafka, PostgreSQL, Redis, the workers' wiring and the effectively-once plumbing (outputs
with deterministic ids, de-duplicated by every consumer) are what is under test: the Redis
read model must equal the oracle exactly, and every position must equal the net of the
distinct fills in ``orders.filled``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
import yaml

from alphaspt.brokers.base import client_order_id
from alphaspt.brokers.paper import PaperBroker
from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Fill, Order, Tick, Topics
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.feeds import ReplayFeed
from alphaspt.portfolio.ledger import Ledger
from alphaspt.risk import RiskEngine
from alphaspt.strategies import FeatureCalculator, load_strategy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
REPLAY = REPO / "examples" / "ticks" / "demo.csv"
SPEED = 5.0

PROFILE: dict[str, Any] = {
    "maxOrderQuantity": 100, "maxOrderValue": 1_000_000, "priceBandPercent": 5,
    "maxPositionPerInstrument": 40, "maxGrossExposure": 50_000_000, "maxDailyLoss": 1_000_000,
    "maxOrdersPerSecond": 10, "maxOrdersPerMinute": 600,
    "tradingWindow": {"start": "00:00", "end": "23:59:59"},
}


def manifests(ns: str) -> dict[str, TradingStrategySpec]:
    return {
        f"mom-{ns}": TradingStrategySpec.model_validate({
            "strategy": "momentum", "params": {"quantity": 10, "allowShort": True},
            "instruments": ["RELIANCE", "INFY", "SBIN"], "riskProfileRef": "pipeline"}),
        f"mr-{ns}": TradingStrategySpec.model_validate({
            "strategy": "mean_reversion", "params": {"quantity": 15, "allowShort": True},
            "instruments": ["RELIANCE", "INFY", "SBIN"], "riskProfileRef": "pipeline"}),
    }


def write_manifests(directory: Path, strategies: dict[str, TradingStrategySpec]) -> None:
    docs: list[dict[str, Any]] = [{"apiVersion": "alphaspt.io/v1alpha1", "kind": "RiskProfile",
                                   "metadata": {"name": "pipeline"}, "spec": PROFILE}]
    for name, spec in strategies.items():
        docs.append({"apiVersion": "alphaspt.io/v1alpha1", "kind": "TradingStrategy",
                     "metadata": {"name": name},
                     "spec": spec.model_dump(mode="json", by_alias=True)})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pipeline.yaml").write_text(yaml.safe_dump_all(docs))


def oracle(strategies: dict[str, TradingStrategySpec]) -> Ledger:
    """The same pure core, in event order, with no Kafka in between."""
    limits = RiskProfileSpec.model_validate(PROFILE)
    features = FeatureCalculator()
    runners = {n: load_strategy(s.strategy, n, s.params) for n, s in strategies.items()}
    risk = RiskEngine(client_order_id=client_order_id)
    broker = PaperBroker()
    ledger = Ledger(strategies)
    for tick in ReplayFeed(REPLAY):
        risk.on_tick(tick)
        ledger.mark(tick.symbol, tick.price)
        for result in broker.on_tick(tick):
            assert isinstance(result, Fill)
            risk.on_fill(result)
            ledger.apply(result)
        f = features.update(tick)
        if f is None:
            continue
        for name, strategy in runners.items():
            if f.symbol not in strategies[name].instruments:
                continue
            for signal in strategy.on_features(f):
                # A replay runs on the event clock (``up --feed replay`` sets
                # ALPHASPT_CLOCK=event): the risk rules' time is the signal's, and its
                # price is the market's at that time.
                risk.state.update_price(signal.symbol, signal.ref_price)
                decision = risk.evaluate(signal, "pipeline", limits, signal.exchange_ts)
                if not decision.approved:
                    ledger.apply(decision)
                    strategy.set_target(signal.symbol, strategy.targets.get(signal.symbol, 0)
                                        - signal.side.sign * signal.quantity)
                    continue
                coid = client_order_id(signal.event_id)
                order = Order(event_id=coid, exchange_ts=signal.exchange_ts,
                              client_order_id=coid, signal_id=signal.event_id,
                              strategy=name, symbol=signal.symbol, side=signal.side,
                              quantity=signal.quantity, order_type=signal.order_type)
                broker.place(order)
                risk.on_order_submitted(order)
                ledger.apply(order)
    return ledger


def wait_for_fills(client: redis.Redis, names: list[str], expected: int, timeout: float,
                   up: Any) -> None:
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        assert up.proc.poll() is None, f"alphaspt up exited:\n{up.output()[-3000:]}"
        fills = sum(int(client.hget(f"portfolio:{n}", "fills") or 0) for n in names)
        if fills >= expected and fills == seen:
            return
        seen = fills
        time.sleep(1.5)
    raise AssertionError(f"only {seen} of {expected} fills reached Redis in {timeout}s")


def test_replay_through_the_pipeline_gives_the_exact_portfolio(
    tmp_path: Path, run_up: Callable[..., Any], redis_url: str, kafka_bootstrap: str,
) -> None:
    ns = os.urandom(3).hex()
    strategies = manifests(ns)
    write_manifests(tmp_path / "manifests", strategies)
    expected = oracle(strategies)
    expected_fills = sum(p.fills for p in expected.snapshots())
    assert expected_fills >= 20, "the replay file must make both strategies trade"
    assert all(p.fills > 0 for p in expected.snapshots())

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    # prices:<symbol> is shared by every pipeline on this Redis (other tests replay other days)
    client.delete(*{f"prices:{s}" for spec in strategies.values() for s in spec.instruments})
    up = run_up(tmp_path / "manifests", "--feed", "replay", "--replay", str(REPLAY),
                "--speed", str(SPEED))
    try:
        wait_for_fills(client, list(strategies), expected_fills, timeout=240, up=up)
        time.sleep(2)  # the last ticks' marks
        actual = {n: client.hgetall(f"portfolio:{n}") for n in strategies}
        beats = {n: client.hgetall(f"workers:strategy-runner/{n}") for n in strategies}
        symbols = {s for spec in strategies.values() for s in spec.instruments}
        prices = {s: [json.loads(p) for p in client.lrange(f"prices:{s}", 0, -1)]
                  for s in symbols}
    finally:
        code = up.stop()
    assert code == 0, up.output()[-3000:]

    # 1. Redis equals the oracle, strategy by strategy and symbol by symbol.
    for snap in expected.snapshots():
        got = actual[snap.name]
        assert int(got["fills"]) == snap.fills
        assert int(got["orders"]) == snap.orders
        assert float(got["charges"]) == pytest.approx(snap.charges, abs=0.005)
        assert float(got["realised_pnl"]) == pytest.approx(snap.realised_pnl, abs=0.005)
        for pos in snap.positions:
            assert int(got[f"position:{pos.symbol}"]) == pos.quantity, (snap.name, pos.symbol)
            assert float(got[f"avg_price:{pos.symbol}"]) == pytest.approx(pos.avg_price,
                                                                          abs=1e-4)
            assert float(got[f"realised_pnl:{pos.symbol}"]) == pytest.approx(
                pos.realised_pnl, abs=0.005)
        assert float(got["unrealised_pnl"]) == pytest.approx(snap.unrealised_pnl, abs=0.005)

    # The dashboard's read model: each runner's heartbeat, the profile's limits, one price
    # point per symbol per exchange second.
    for name in strategies:
        assert beats[name], f"no heartbeat from the runner of {name}"
        assert time.time() - json.loads(beats[name]["updated_at"]) < 15
        assert json.loads(beats[name]["starts"]) >= 1
        assert float(actual[name]["limit:max_daily_loss"]) == PROFILE["maxDailyLoss"]
        assert actual[name]["kill_switch"] == "0"
    for symbol, points in prices.items():
        assert points, f"no price points for {symbol}"
        seconds = [p["t"] for p in points]
        assert seconds == sorted(set(seconds)), f"{symbol}: not one point per second"

    # 2. Positions equal the net of the distinct fills in orders.filled. A fill may be in
    # the topic twice (at-least-once delivery), but only as the same event: never two
    # different fills with one trade id (``ingest_ts``, when it was produced, aside).
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap)
    first: dict[str, Fill] = {}
    variants: dict[str, set[Fill]] = defaultdict(set)
    for m in read_to_end(kafka, Topics.ORDERS_FILLED):
        fill = Codec(Fill).decode(m.value())
        if fill.strategy in strategies:
            first.setdefault(fill.trade_id, fill)
            variants[fill.trade_id].add(msgspec.structs.replace(fill, ingest_ts=0))
    assert len(first) == expected_fills
    assert all(len(v) == 1 for v in variants.values()), {
        t: v for t, v in variants.items() if len(v) > 1}
    fills = list(first.values())
    net: dict[tuple[str, str], int] = defaultdict(int)
    for f in fills:
        net[(f.strategy, f.symbol)] += f.side.sign * f.quantity
    for (strategy, symbol), qty in net.items():
        assert int(actual[strategy][f"position:{symbol}"]) == qty
        assert abs(qty) <= PROFILE["maxPositionPerInstrument"]

    # 3. Tick-to-fill latency, from the ingest of the tick that triggered the signal.
    ticks = {}
    for m in read_to_end(kafka, Topics.TICKS):
        t = Codec(Tick).decode(m.value())
        ticks[(t.symbol, t.exchange_ts)] = t.ingest_ts
    signal_to_fill = sorted((f.ingest_ts - ticks[(f.symbol, f.signal_exchange_ts)]) / 1e6
                            for f in fills if (f.symbol, f.signal_exchange_ts) in ticks)
    exec_to_fill = sorted((f.ingest_ts - ticks[(f.symbol, f.exchange_ts)]) / 1e6
                          for f in fills if (f.symbol, f.exchange_ts) in ticks)
    report = {
        "broker": os.environ.get("ALPHASPT_TEST_KAFKA", "tansu"),
        "fills": len(fills),
        "signal_tick_to_fill_ms": {"p50": statistics.median(signal_to_fill),
                                   "p99": signal_to_fill[int(0.99 * (len(signal_to_fill) - 1))]},
        "executing_tick_to_fill_ms": {"p50": statistics.median(exec_to_fill),
                                      "p99": exec_to_fill[int(0.99 * (len(exec_to_fill) - 1))]},
    }
    print("pipeline latency:", json.dumps(report))
    artifacts = os.environ.get("ALPHASPT_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        (Path(artifacts) / f"pipeline-latency-{report['broker']}.json").write_text(
            json.dumps(report, indent=2))
