"""The market feed follows the union of the configured strategies' instruments."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from alphaspt.core.config import MarketConfig, Settings
from alphaspt.core.events import Codec, Command, Control, Tick, Topics, now_ns
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming import EventProducer
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.workers.common import ConfigSource
from alphaspt.workers.market_feed import FeedConfig, MarketFeed

pytestmark = pytest.mark.integration


def symbols_since(settings: Settings, since_ns: int) -> set[str]:
    codec = Codec(Tick)
    return {t.symbol for t in (codec.decode(m.value())
                               for m in read_to_end(settings.kafka, Topics.TICKS))
            if t.ingest_ts >= since_ns}


def test_feed_adds_instruments_on_a_config_changed_notice(
    settings: Settings, configure: Callable[..., None],
) -> None:
    profile = {"p": RiskProfileSpec()}
    configure({"one": TradingStrategySpec(strategy="momentum", instruments=("ITC",),
                                          risk_profile_ref="p")}, profile)
    source = ConfigSource(settings.postgres.url.get_secret_value(),  # type: ignore[union-attr]
                          settings.namespace)
    # With NSE's calendar, as a cluster's feed has it (these tests' settings have none).
    calendar = settings.model_copy(update={"market": MarketConfig()})
    feed = MarketFeed(calendar, source, EventProducer(settings.kafka),
                      FeedConfig(interval_s=0.05, seed=7))
    started = now_ns()
    thread = threading.Thread(target=feed.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while feed.produced < 20:
            assert time.monotonic() < deadline, "no ticks"
            time.sleep(0.1)
        assert symbols_since(settings, started) == {"ITC"}
        # On the wall clock the mock stamps the wall time, not its session clock's (which
        # runs ahead of it once wrapped to the next open, and such events are dead-lettered).
        codec = Codec(Tick)
        mine = [t for t in map(codec.decode, (m.value() for m in read_to_end(
            settings.kafka, Topics.TICKS))) if t.ingest_ts >= started]
        assert mine and all(abs(t.exchange_ts - t.ingest_ts) < 5 * 10**9 for t in mine), \
            [(t.exchange_ts, t.ingest_ts) for t in mine[:3]]

        configure({"two": TradingStrategySpec(strategy="momentum", instruments=("LT", "ITC"),
                                              risk_profile_ref="p")}, profile)
        time.sleep(1.0)  # the feed's control consumer has joined by now
        changed = now_ns()
        producer = EventProducer(settings.kafka)
        producer.send(Topics.CONTROL, "*", Control(event_id=f"cc-{changed}",
                                                   exchange_ts=changed,
                                                   command=Command.CONFIG_CHANGED))
        producer.flush()
        deadline = time.monotonic() + 30
        while feed.instruments != {"ITC", "LT"}:
            assert time.monotonic() < deadline, f"instruments still {feed.instruments}"
            time.sleep(0.1)
        time.sleep(1.0)
        assert symbols_since(settings, changed) == {"ITC", "LT"}
    finally:
        feed.stop()
        thread.join(30)
    assert not thread.is_alive()
