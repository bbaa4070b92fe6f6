"""Market feed: a mock market, a CSV replay or Zerodha Kite's ticker → market.ticks (key:
symbol).

The ``kite`` kind runs the real ``kiteconnect.KiteTicker`` (its Twisted reactor in this
process, see ``alphaspt.feeds.kite``) with the watchdog; an instrument set beyond Kite's
limits (3 connections x 3,000) is refused at start (the worker exits with that line) and on
a change (logged; the previous subscriptions stay).

Subscribes to the union of the instruments of the configured strategies (PostgreSQL) and
follows changes to it: a CONFIG_CHANGED notice on ``control.commands`` reloads the set.
Ticks are produced with an idempotent producer and flushed every round; their event ids
are deterministic, so a downstream stage drops a tick it has already seen. A restarted
replay resumes after the last tick already in ``market.ticks`` instead of sending the
file again.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from confluent_kafka import Consumer
from kiteconnect import KiteConnect

from alphaspt.core.config import Settings
from alphaspt.core.events import Codec, Command, Control, DecodeError, Tick, Topics
from alphaspt.core.health import Health
from alphaspt.core.streaming import EventProducer
from alphaspt.core.streaming.reader import read_tail
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.feeds import MockFeed, MockFeedConfig, ReplayFeed, ReplayFormatError
from alphaspt.feeds.kite import (
    InstrumentCache,
    KiteFeed,
    KiteStream,
    StreamConfig,
    feed_credentials,
)
from alphaspt.feeds.mock import SessionClock
from alphaspt.market import calendar_from, instruments_from
from alphaspt.market.calendar import ist_datetime
from alphaspt.workers.common import ConfigSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedConfig:
    kind: str = "mock"
    """``mock``, ``replay`` or ``kite``."""
    replay_path: Path | None = None
    speed: float | None = None
    """Replay pacing: real time x speed; ``None`` as fast as possible."""
    interval_s: float = 0.25
    """Mock: pause between rounds (one tick per instrument)."""
    seed: int | None = None
    """Mock: ``None`` seeds from the clock, so a restarted feed never repeats ids."""
    volatility: float = 0.0008
    kite_mode: Literal["quote", "full"] = "quote"
    """Kite: streaming mode (``full`` adds depth, i.e. bid/ask, and exchange timestamps)."""
    kite_watchdog: Literal["market-hours", "always", "off"] = "market-hours"
    kite_stall_timeout_s: float = 5.0


class MarketFeed:
    def __init__(self, settings: Settings, source: ConfigSource, producer: EventProducer,
                 config: FeedConfig) -> None:
        self.settings = settings
        self.source = source
        self.producer = producer
        self.config = config
        self.instruments: set[str] = set()
        self.produced = 0
        self._running = False
        self._control = Consumer({
            **settings.kafka.consumer_config(),
            "group.id": f"alphaspt-{settings.namespace}-market-feed-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        })
        self._codec = Codec(Control)
        self.health = Health()

    def stop(self) -> None:
        self._running = False

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self._running = False

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def reload(self) -> None:
        instruments = self.source.load().instruments
        if instruments != self.instruments:
            log.info("market feed instruments: %s", sorted(instruments))
        self.instruments = instruments

    def run(self, *, max_seconds: float | None = None) -> None:
        self._control.subscribe([Topics.CONTROL])
        self.reload()
        self._running = True
        self.health.ready = True
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            for tick in self._ticks():
                self.health.beat()
                if not self._running or (deadline is not None and time.monotonic() > deadline):
                    break
                if tick is None:
                    continue
                self.producer.send(Topics.TICKS, tick.symbol, tick)
                self.produced += 1
        finally:
            self.producer.flush()
            self._control.close()
            log.info("market feed stopped after %d ticks", self.produced)

    def _ticks(self) -> Iterator[Tick | None]:
        """Ticks of the configured instruments; ``None`` while idle (to check for stop)."""
        if self.config.kind == "replay":
            yield from self._replay()
        elif self.config.kind == "kite":
            yield from self._kite()
        else:
            yield from self._mock()

    def _mock(self) -> Iterator[Tick | None]:
        seed = self.config.seed if self.config.seed is not None else time.time_ns() % 2**31
        instruments = instruments_from(self.settings.market)
        ticks = {s: float(instruments.tick_size(s, Decimal("0.05")))
                 for s in self.instruments} if instruments is not None else {}
        feed = MockFeed(MockFeedConfig(symbols=tuple(sorted(self.instruments)), seed=seed,
                                       volatility=self.config.volatility, tick_sizes=ticks),
                        clock=self._mock_clock())
        while self._running:
            if self._poll_control():
                feed.set_symbols(sorted(self.instruments))
            yield from feed.next_round() if self.instruments else ()
            self.producer.flush()
            time.sleep(self.config.interval_s)
            yield None

    def _mock_clock(self) -> Callable[[], int]:
        """The mock market's exchange time: a session clock on the trading calendar, going
        on after the newest tick already in ``market.ticks`` (a restarted feed never goes
        back in time); the wall clock when no calendar is configured, or when the run is on
        the wall clock (``Settings.clock``): its rules judge the wall time, and the stages
        dead-letter events stamped ahead of it, which a session clock is once it has
        wrapped to the next session's open."""
        calendar = calendar_from(self.settings.market)
        if calendar is None or self.settings.clock == "wall":
            return time.time_ns
        newest, _ = self._already_sent()
        start = max(newest.values()) + 1_000_000 if newest else None
        clock = SessionClock(calendar, start_ns=start)
        log.info("mock market on a simulated session clock from %s IST (%s)",
                 ist_datetime(clock()).strftime("%Y-%m-%d %H:%M:%S"), calendar.source)
        return clock

    def _kite(self) -> Iterator[Tick | None]:
        kite = self.settings.kite
        api_key, token = feed_credentials(kite)

        def fetch(exchange: str) -> list[dict[str, Any]]:
            records: list[dict[str, Any]] = KiteConnect(
                api_key, root=kite.api_root).instruments(exchange)
            return records

        feed = KiteFeed(KiteStream(StreamConfig(
            api_key=api_key, ticker_root=kite.ticker_root, mode=self.config.kite_mode,
            watchdog=self.config.kite_watchdog,
            stall_timeout_s=self.config.kite_stall_timeout_s), token),
            InstrumentCache(kite.instruments_dir, fetch))
        feed.set_symbols(self.instruments)
        try:
            while self._running:
                if self._poll_control():
                    try:
                        feed.set_symbols(self.instruments)
                    except InvalidConfiguration as exc:
                        log.error("instrument change refused: %s", exc)
                yield from feed.poll(0.2)
                yield None
        finally:
            feed.close()

    def _replay(self) -> Iterator[Tick | None]:
        if self.config.replay_path is None:
            raise ValueError("replay feed needs a file (--replay PATH)")

        def bad_row(error: ReplayFormatError) -> None:
            log.error("skipping malformed replay row: %s", error)

        newest, sent_ids = self._already_sent()
        if newest:
            log.info("replay resumes after the ticks already in %s (%d symbols)",
                     Topics.TICKS, len(newest))
        for n, tick in enumerate(ReplayFeed(self.config.replay_path, self.config.speed,
                                            on_error=bad_row)):
            if n % 100 == 0:
                self._poll_control()
            if tick.exchange_ts < newest.get(tick.symbol, 0) or tick.event_id in sent_ids:
                continue
            yield tick if tick.symbol in self.instruments else None
        self.producer.flush()
        log.info("replay of %s finished", self.config.replay_path)
        while self._running:
            self._poll_control()
            time.sleep(0.2)
            yield None

    def _already_sent(self) -> tuple[dict[str, int], set[str]]:
        """Per symbol, the newest exchange timestamp already in ``market.ticks``, and the
        ids of the ticks near the end, so a replay restarted after a crash skips what it
        sent. Per symbol, because each symbol's ticks are in order in one partition while
        partitions deliver independently (a crash can lose one partition's last ticks
        while another's later ones landed)."""
        codec = Codec(Tick)
        newest: dict[str, int] = {}
        ids: set[str] = set()
        for msg in read_tail(self.settings.kafka, Topics.TICKS, 1000):
            try:
                tick = codec.decode(msg.value())
            except DecodeError:
                continue
            newest[tick.symbol] = max(newest.get(tick.symbol, 0), tick.exchange_ts)
            ids.add(tick.event_id)
        return newest, ids

    def _poll_control(self) -> bool:
        """Apply CONFIG_CHANGED notices; True when the instrument set changed."""
        before = set(self.instruments)
        for msg in self._control.consume(100, 0):
            if msg.error() is not None:
                continue
            try:
                control = self._codec.decode(msg.value())
            except DecodeError as exc:
                log.warning("ignoring undecodable control message: %s", exc)
                continue
            if control.command is Command.CONFIG_CHANGED:
                self.reload()
        return before != self.instruments
