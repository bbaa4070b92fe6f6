"""Strategy runner: one process per TradingStrategy; market.features → signals.

Configuration comes from PostgreSQL at start-up and again on a CONFIG_CHANGED notice for
this strategy. State (the strategy's target book and indicators) is checkpointed in
``strategy.<name>.state`` inside each transaction, so a restart resumes exactly where the
committed offsets are.

Warm-up and staleness: features older than ``max_signal_age`` (by ingest time, i.e. when
our pipeline produced them) only *warm up* the strategy (``Strategy.observe``): a runner
that starts on a new consumer group replays the history of ``market.features`` to warm up
without trading on it, and a runner that was down never trades on stale prices.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Codec,
    Command,
    Control,
    Event,
    Features,
    OrderRejected,
    RiskDecision,
    Topics,
    now_ns,
)
from alphaspt.core.specs import DesiredState
from alphaspt.core.streaming import Output, ProcessorConfig
from alphaspt.strategies import Strategy, load_strategy
from alphaspt.workers.common import ConfigSource, ConfiguredStage

log = logging.getLogger(__name__)


class StrategyRunner(ConfiguredStage):
    stage = "strategy-runner"
    SENT_WINDOW = 1000

    def __init__(self, settings: Settings, config: ProcessorConfig, source: ConfigSource,
                 name: str, *, max_signal_age_s: float = 10.0) -> None:
        super().__init__(settings, config, {
            Topics.FEATURES: Codec(Features),
            Topics.SIGNALS_REJECTED: Codec(RiskDecision),
            Topics.ORDERS_REJECTED: Codec(OrderRejected),
        }, source)
        self.name = name
        self.max_signal_age_ns = int(max_signal_age_s * 1e9)
        self.record = source.strategy(name)
        self.strategy: Strategy[Any] = self._build()
        self.paused = self.record.spec.desired_state is not DesiredState.RUNNING
        self.observed = 0
        self.signals = 0
        self.sent: dict[str, tuple[str, int]] = {}
        """Recent signal id → (symbol, signed quantity), to undo a rejected signal."""

    def _build(self) -> Strategy[Any]:
        spec = self.record.spec
        return load_strategy(spec.strategy, self.name, spec.params)

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        if isinstance(event, RiskDecision):
            self._undo(event.signal.event_id)
            return ()
        if isinstance(event, OrderRejected):
            self._undo(event.signal_id)
            return ()
        assert isinstance(event, Features)
        if event.symbol not in self.record.spec.instruments:
            return ()
        stale = now_ns() - event.ingest_ts > self.max_signal_age_ns
        if stale or self.paused:
            self.strategy.observe(event)
            self.observed += 1
            return ()
        signals = self.strategy.on_features(event)
        self.signals += len(signals)
        for s in signals:
            self.sent[s.event_id] = (s.symbol, s.side.sign * s.quantity)
        while len(self.sent) > self.SENT_WINDOW:
            del self.sent[next(iter(self.sent))]
        return [Output(Topics.SIGNALS_GENERATED, self.name, s) for s in signals]

    def _undo(self, signal_id: str) -> None:
        """A signal of ours was refused (by risk or the broker): the target book must not
        believe it went through, or the strategy would never ask again."""
        sent = self.sent.pop(signal_id, None)
        if sent is None:
            return
        symbol, signed = sent
        self.strategy.set_target(symbol, self.strategy.targets.get(symbol, 0) - signed)
        log.info("%s: signal %s refused; target %s back by %d", self.name, signal_id,
                 symbol, -signed)

    def on_control(self, control: Control) -> Iterable[Output]:
        if control.target not in (self.name, "*"):
            return ()
        if control.command is Command.CONFIG_CHANGED and control.target == self.name:
            snapshot = self.strategy.snapshot()
            self.record = self.source.strategy(self.name)
            self.strategy = self._build()
            self.strategy.restore(snapshot)
            self.paused = self.record.spec.desired_state is not DesiredState.RUNNING
            log.info("%s: configuration reloaded", self.name)
        elif control.command is Command.PAUSE:
            self.paused = True
        elif control.command is Command.RESUME:
            self.paused = False
        return ()

    def save_state(self) -> bytes | None:
        return json.dumps({"strategy": self.strategy.snapshot(), "paused": self.paused,
                           "sent": self.sent}, separators=(",", ":")).encode()

    def load_state(self, data: bytes) -> None:
        state = json.loads(data)
        self.strategy.restore(state["strategy"])
        self.paused = bool(state.get("paused", self.paused))
        self.sent = {k: (v[0], int(v[1])) for k, v in state.get("sent", {}).items()}
