"""Strategy runner: one process per TradingStrategy; market.features → signals.

Configuration comes from PostgreSQL at start-up and again on a CONFIG_CHANGED notice for
this strategy. State lives in ``strategy.<name>.state`` (its changelog): the key
``strategy`` holds the target book, indicators, the last feature count per symbol and the
pause flag; ``sent/<signal id>`` each signal awaiting its outcome.

Outcomes in feature order: while a signal of a symbol has no outcome yet (placed:
``orders.submitted``; refused: ``trading.signals.rejected``/``orders.rejected``), that
symbol's features are held back (not stored: checkpoints do not cover them, so a restart
consumes them again), so a refusal always undoes the target book at the same point of the
feature stream, whatever the timing. Other symbols go on.

De-duplication: features carry a per-symbol ``count``; a feature whose count is not above
the last one seen for its symbol is a redelivery and is dropped.

Warm-up and staleness (wall clock only): features older than ``max_signal_age`` (by
ingest time) only *warm up* the strategy (``Strategy.observe``), so a runner that starts on
a new consumer group, or was down, never trades on stale prices. With the event clock
(replays) every feature is current: the replay is the market.

Bounds: ``strategy`` grows with the instruments only; ``sent`` holds in-flight signals;
at most ``max_deferred`` (2,000) features are held back before fetching pauses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from alphaspt.core.config import Settings
from alphaspt.core.events import (
    CANCELLED_PREFIX,
    Codec,
    Command,
    Control,
    Event,
    Features,
    Order,
    OrderRejected,
    RiskDecision,
    Topics,
    now_ns,
)
from alphaspt.core.specs import DesiredState
from alphaspt.core.streaming import Output, ProcessorConfig
from alphaspt.risk.squareoff import is_square_off
from alphaspt.strategies import Strategy, load_strategy
from alphaspt.workers.common import ConfigSource, ConfiguredStage

log = logging.getLogger(__name__)


class StrategyRunner(ConfiguredStage):
    stage = "strategy-runner"
    EARLY_WINDOW = 1000

    def __init__(self, settings: Settings, config: ProcessorConfig, source: ConfigSource,
                 name: str, *, max_signal_age_s: float = 10.0,
                 outcome_timeout_s: float = 30.0, max_deferred: int = 2000) -> None:
        super().__init__(settings, config, {
            Topics.FEATURES: Codec(Features),
            Topics.SIGNALS_REJECTED: Codec(RiskDecision),
            Topics.ORDERS_SUBMITTED: Codec(Order),
            Topics.ORDERS_REJECTED: Codec(OrderRejected),
        }, source)
        self.name = name
        self.max_signal_age_ns = int(max_signal_age_s * 1e9)
        self.event_time = settings.clock == "event"
        self.last_count: dict[str, int] = {}
        self.record = source.strategy(name)
        self.strategy: Strategy[Any] = self._build()
        self.paused = self.record.spec.desired_state is not DesiredState.RUNNING
        self.observed = 0
        self.signals = 0
        self.outcome_timeout_ns = int(outcome_timeout_s * 1e9)
        self.sent: dict[str, tuple[str, int, int]] = {}
        """Signals awaiting their outcome: id → (symbol, signed quantity, sent at)."""
        self.open: dict[str, int] = {}
        """Symbol → signals awaiting an outcome."""
        self.deferred: dict[str, list[tuple[Features, int, int]]] = {}
        """Features (with partition and offset) held back until their symbol's open
        signals have an outcome."""
        self.held = 0
        self.max_deferred = max_deferred
        self.early: dict[str, bool] = {}
        """Outcomes (refused?) of signals not sent (yet), the last ``EARLY_WINDOW``."""

    def _build(self) -> Strategy[Any]:
        spec = self.record.spec
        return load_strategy(spec.strategy, self.name, spec.params)

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        if isinstance(event, RiskDecision):
            return self._outcome(event.signal.event_id, event.signal.strategy, refused=True)
        if isinstance(event, OrderRejected | Order) and event.strategy == self.name and \
                event.signal_id not in self.sent and self._book_change(event):
            return ()
        if isinstance(event, OrderRejected):
            return self._outcome(event.signal_id, event.strategy, refused=True)
        if isinstance(event, Order):
            return self._outcome(event.signal_id, event.strategy, refused=False)
        assert isinstance(event, Features)
        if event.symbol not in self.record.spec.instruments:
            return ()
        queue = self.deferred.get(event.symbol)
        if event.count <= self.last_count.get(event.symbol, 0) or (
                queue and event.count <= queue[-1][0].count):
            return ()  # seen: a redelivery
        if self.open.get(event.symbol):
            # Held back, not stored: checkpoints do not cover it, so after a restart it is
            # consumed again. Other symbols go on; past ``max_deferred`` no more features
            # are fetched until outcomes come in.
            self.deferred.setdefault(event.symbol, []).append(
                (event, self.current_partition, self.current_offset))
            self.hold()
            self.held += 1
            if self.held >= self.max_deferred:
                self.pause_input(Topics.FEATURES)
            return ()
        return self._features(event)

    def _features(self, event: Features) -> list[Output]:
        self.last_count[event.symbol] = event.count
        self.touch("strategy")
        stale = not self.event_time and now_ns() - event.ingest_ts > self.max_signal_age_ns
        if stale or self.paused:
            self.strategy.observe(event)
            self.observed += 1
            return []
        product = self.record.spec.product  # the spec's product, whatever the code says
        signals = [s if s.product is product else msgspec.structs.replace(s, product=product)
                   for s in self.strategy.on_features(event)]
        self.signals += len(signals)
        outputs = [Output(Topics.SIGNALS_GENERATED, self.name, s) for s in signals]
        for s in signals:
            self.sent[s.event_id] = (s.symbol, s.side.sign * s.quantity, now_ns())
            self.open[s.symbol] = self.open.get(s.symbol, 0) + 1
            self.touch(f"sent/{s.event_id}")
            early = self.early.pop(s.event_id, None)
            if early is not None:  # its outcome came first (we sent it before a restart)
                self.touch(f"early/{s.event_id}")
                outputs += self._outcome(s.event_id, self.name, refused=early)
        return outputs

    def _book_change(self, event: OrderRejected | Order) -> bool:
        """Orders the pipeline changed on its own: a square-off (the position moves by it)
        or a working order cancelled after it was placed (its unfilled quantity will not
        come). The target book follows, so the strategy does not trade on a position it no
        longer has. True if ``event`` was one of these."""
        if isinstance(event, Order):
            if not is_square_off(event.signal_id):
                return False
            signed = event.side.sign * event.quantity
        elif is_square_off(event.signal_id):
            if not event.reason.startswith(CANCELLED_PREFIX) or event.side is None:
                return True  # a square-off with nothing to close: no change
            signed = -event.side.sign * event.quantity
        elif event.reason.startswith(CANCELLED_PREFIX) and event.side is not None:
            signed = -event.side.sign * event.quantity
        else:
            return False
        self.strategy.set_target(event.symbol, self.strategy.targets.get(event.symbol, 0) + signed)
        self.touch("strategy")
        log.info("%s: %s moves the target of %s by %+d", self.name,
                 "square-off" if isinstance(event, Order) else event.reason, event.symbol, signed)
        return True

    def _outcome(self, signal_id: str, strategy: str, *, refused: bool) -> list[Output]:
        """A signal of ours was placed or refused. Refused: the target book must not
        believe it went through, or the strategy would never ask again. Either way the
        features of its symbol held back meanwhile are processed now, in order.

        An outcome of a signal not (yet) sent is remembered: after a restart the runner
        sends again a signal it had sent before its last checkpoint, whose outcome may be
        consumed first."""
        if strategy != self.name:
            return []
        sent = self.sent.pop(signal_id, None)
        if sent is None:
            if signal_id not in self.early:
                self.early[signal_id] = refused
                self.touch(f"early/{signal_id}")
                while len(self.early) > self.EARLY_WINDOW:
                    oldest = next(iter(self.early))
                    del self.early[oldest]
                    self.touch(f"early/{oldest}")
            return []
        self.touch(f"sent/{signal_id}")
        self.touch("strategy")
        symbol, signed, _at = sent
        self.open[symbol] -= 1
        if not self.open[symbol]:
            del self.open[symbol]
        if refused:
            self.strategy.set_target(symbol, self.strategy.targets.get(symbol, 0) - signed)
            log.info("%s: signal %s refused; target %s back by %d", self.name, signal_id,
                     symbol, -signed)
        outputs: list[Output] = []
        queue = self.deferred.get(symbol, [])
        while queue and not self.open.get(symbol):
            event, partition, offset = queue.pop(0)
            self.release(Topics.FEATURES, partition, offset)
            self.held -= 1
            outputs += self._features(event)
        if not queue:
            self.deferred.pop(symbol, None)
        if self.held < self.max_deferred // 2:
            self.resume_input(Topics.FEATURES)
        return outputs

    def on_idle(self) -> Iterable[Output]:
        """Wall clock only: a signal whose outcome has not come in ``outcome_timeout`` s
        (a stage down for long) stops holding its symbol back; it is taken as placed."""
        if self.event_time:
            return []
        cutoff = now_ns() - self.outcome_timeout_ns
        outputs: list[Output] = []
        for signal_id, (symbol, _signed, at) in list(self.sent.items()):
            if at < cutoff:
                log.warning("%s: no outcome for signal %s (%s) in %.0f s; no longer holding "
                            "%s back", self.name, signal_id, symbol,
                            self.outcome_timeout_ns / 1e9, symbol)
                outputs += self._outcome(signal_id, self.name, refused=False)
        return outputs

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
        self.touch("strategy")
        return ()

    def state_value(self, task: int, key: str) -> bytes | None:
        if key == "strategy":
            return json.dumps({"strategy": self.strategy.snapshot(), "paused": self.paused,
                               "last": self.last_count}, separators=(",", ":")).encode()
        if key.startswith("early/"):
            early = self.early.get(key.removeprefix("early/"))
            return None if early is None else json.dumps(early).encode()
        sent = self.sent.get(key.removeprefix("sent/"))
        return None if sent is None else json.dumps(sent).encode()

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        self.strategy = self._build()
        self.last_count = {}
        self.sent = {}
        self.open = {}
        self.deferred = {}
        self.held = 0
        self.early = {}
        self.paused = self.record.spec.desired_state is not DesiredState.RUNNING
        for key in sorted(items):
            value = json.loads(items[key])
            if key == "strategy":
                self.strategy.restore(value["strategy"])
                self.paused = bool(value.get("paused", self.paused))
                self.last_count = {k: int(v) for k, v in value.get("last", {}).items()}
            elif key.startswith("early/"):
                self.early[key.removeprefix("early/")] = bool(value)
            elif key.startswith("sent/"):
                symbol = str(value[0])
                self.sent[key.removeprefix("sent/")] = (symbol, int(value[1]), int(value[2]))
                self.open[symbol] = self.open.get(symbol, 0) + 1

    def drop_task(self, task: int) -> None:
        self.restore_task(task, {})

