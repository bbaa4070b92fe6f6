"""The strategy runner: warm-up without trading on history, state across a restart, and
features held back while a signal of their symbol awaits its outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from alphaspt.brokers.base import client_order_id
from alphaspt.core.config import Settings
from alphaspt.core.events import Codec, Features, Order, Signal, Topics, now_ns, stable_id
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming import (
    EventProducer,
    StreamProcessor,
    TopicSpec,
    admin_client,
    ensure_topics,
)
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.workers.common import ConfigSource, stage_config
from alphaspt.workers.strategy_runner import StrategyRunner

pytestmark = pytest.mark.integration

PARAMS = {"quantity": 5, "entryZ": 2.0, "exitZ": 0.5, "warmup": 3, "allowShort": True}


def features(symbol: str, n: int, z: float, ingest_ts: int) -> Features:
    return Features(event_id=stable_id("f", symbol, n, ingest_ts), exchange_ts=ingest_ts,
                    ingest_ts=ingest_ts, symbol=symbol, price=100.0 + z, tick_id=f"t{n}-{z}",
                    count=n, ret=0.0, ema_fast=100.0, ema_slow=100.0, mean=100.0, std=1.0,
                    zscore=z, vwap=100.0, volatility=0.01)


def signals(settings: Settings, strategy: str) -> list[Signal]:
    codec = Codec(Signal)
    return [s for s in (codec.decode(m.value())
                        for m in read_to_end(settings.kafka, Topics.SIGNALS_GENERATED))
            if s.strategy == strategy]


def placed(signal: Signal) -> Order:
    """The trading engine's outcome of an approved signal (no risk manager or trading
    engine runs here, so the test publishes it)."""
    coid = client_order_id(signal.event_id)
    return Order(event_id=coid, exchange_ts=signal.exchange_ts, client_order_id=coid,
                 signal_id=signal.event_id, strategy=signal.strategy, symbol=signal.symbol,
                 side=signal.side, quantity=signal.quantity, order_type=signal.order_type)


def held_back(runner: StrategyRunner, symbol: str) -> list[int]:
    """The counts of the symbol's features the runner holds back, in order."""
    return [entry[0].count for entry in runner.deferred.get(symbol, [])]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_history_warms_up_without_signals_and_state_survives_a_restart(
    settings: Settings, configure: Callable[..., None],
) -> None:
    name = f"mr-{settings.namespace}"
    sym = settings.namespace.upper()  # market.features is shared with other tests
    configure({name: TradingStrategySpec(strategy="mean_reversion", params=PARAMS,
                                         instruments=(sym,), risk_profile_ref="p")},
              {"p": RiskProfileSpec()})
    ensure_topics(admin_client(settings.kafka),
                  [TopicSpec(Topics.strategy_state(name), 1, dict(Topics.CHANGELOG_CONFIG))])
    producer = EventProducer(settings.kafka)
    stale = now_ns() - 3_600 * 10**9  # an hour old: history, never traded on
    for n, z in enumerate([0.0, 0.1, -0.2, -2.5, 0.0], start=1):
        producer.send(Topics.FEATURES, sym, features(sym, n, z, stale + n))
    producer.flush()

    source = ConfigSource(settings.postgres.url.get_secret_value(),  # type: ignore[union-attr]
                          settings.namespace)

    def start() -> tuple[StrategyRunner, threading.Thread]:
        runner = StrategyRunner(settings, stage_config(
            settings, f"strategy-{name}", changelog_topic=Topics.strategy_state(name)),
            # Live features may wait through two restarts before they are traded on; the
            # history is an hour old, far beyond this.
            source, name, max_signal_age_s=300)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        return runner, thread

    def stop(runner: StreamProcessor, thread: threading.Thread) -> None:
        runner.stop()
        thread.join(30)
        assert not thread.is_alive()

    runner, thread = start()
    try:
        wait_until(lambda: runner.observed == 5, "history not observed")
        assert runner.strategy.seen(sym) == 5 and runner.strategy.targets == {}
        # A fresh low z-score: warmed up, so it trades at once.
        producer.send(Topics.FEATURES, sym, features(sym, 6, -2.6, now_ns()))
        producer.flush()
        wait_until(lambda: len(signals(settings, name)) == 1, "no live signal")
        wait_until(lambda: runner.processed >= 6, "batch not processed")
    finally:
        stop(runner, thread)
    first = signals(settings, name)[0]
    assert (first.side.value, first.quantity) == ("BUY", 5)

    # Restart: the target book (+5) and the signal still awaiting its outcome come back
    # from strategy.<name>.state. Until the signal is placed, further features of its
    # symbol are held back, not traded on.
    runner, thread = start()
    try:
        wait_until(lambda: runner.strategy.targets == {sym: 5}, "state not restored")
        assert set(runner.sent) == {first.event_id} and runner.open == {sym: 1}
        producer.send(Topics.FEATURES, sym, features(sym, 7, -2.7, now_ns()))
        producer.send(Topics.FEATURES, sym, features(sym, 8, 2.4, now_ns()))
        producer.flush()
        wait_until(lambda: held_back(runner, sym) == [7, 8], "features not held back")
        time.sleep(1.0)  # time enough to trade on them, were they not held back
        assert len(signals(settings, name)) == 1
    finally:
        stop(runner, thread)

    # Another restart: no checkpoint covered the held-back features, so the runner
    # consumes them again and, the signal still open, holds them back again. The first
    # signal is placed: they are processed in order, so the low z-score is not bought
    # again (already long 5) and the high one sells 10 (long 5 -> short 5).
    runner, thread = start()
    try:
        wait_until(lambda: held_back(runner, sym) == [7, 8], "held-back features lost")
        assert len(signals(settings, name)) == 1
        producer.send(Topics.ORDERS_SUBMITTED, name, placed(first))
        producer.flush()
        wait_until(lambda: len(signals(settings, name)) == 2, "no second signal")
        wait_until(lambda: not runner.deferred and runner.strategy.targets == {sym: -5},
                   "held-back features not processed")
    finally:
        stop(runner, thread)
    second = signals(settings, name)[1]
    assert (second.side.value, second.quantity) == ("SELL", 10)
    assert len(signals(settings, name)) == 2, "the low z-score must not buy again"
