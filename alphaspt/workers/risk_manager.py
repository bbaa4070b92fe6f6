"""Risk manager: trading.signals.generated → validated | rejected, with a reason code.

Limits come from each strategy's RiskProfile (PostgreSQL, reloaded on CONFIG_CHANGED).
Positions (from fills), pending orders, order rates and daily P&L live in ``RiskState``,
checkpointed in ``alphaspt.state`` inside each transaction, so they survive a restart.
A KILL_SWITCH on ``control.commands`` is applied as it is consumed: it takes effect on the
next signal. Rule time is the wall clock (the trading window is a wall-clock rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from alphaspt.brokers.base import client_order_id
from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Codec,
    Control,
    Event,
    Fill,
    Order,
    OrderRejected,
    RiskReason,
    Signal,
    Tick,
    Topics,
    now_ns,
)
from alphaspt.core.streaming import Output, ProcessorConfig
from alphaspt.risk import RiskEngine, RiskEngineConfig, RiskState
from alphaspt.workers.common import ConfigSource, ConfiguredStage

log = logging.getLogger(__name__)


class RiskManager(ConfiguredStage):
    stage = "risk-manager"

    def __init__(self, settings: Settings, config: ProcessorConfig, source: ConfigSource,
                 *, clock: Callable[[], int] = now_ns,
                 engine_config: RiskEngineConfig | None = None) -> None:
        super().__init__(settings, config, {
            Topics.SIGNALS_GENERATED: Codec(Signal),
            Topics.ORDERS_SUBMITTED: Codec(Order),
            Topics.ORDERS_FILLED: Codec(Fill),
            Topics.ORDERS_REJECTED: Codec(OrderRejected),
            Topics.TICKS: Codec(Tick),
        }, source)
        self.clock = clock
        self.engine_config = engine_config or RiskEngineConfig(decision_cache_size=2000)
        self.engine = self._engine(RiskState())

    def _engine(self, state: RiskState) -> RiskEngine:
        return RiskEngine(state, config=self.engine_config, clock=self.clock,
                          client_order_id=client_order_id)

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        if isinstance(event, Tick):
            self.engine.on_tick(event)
        elif isinstance(event, Fill):
            self.engine.on_fill(event)
        elif isinstance(event, Order):
            self.engine.on_order_submitted(event)
        elif isinstance(event, OrderRejected):
            self.engine.on_order_rejected(event)
        elif isinstance(event, Signal):
            return [self._decide(event)]
        return ()

    def _decide(self, signal: Signal) -> Output:
        record = self.pipeline.strategies.get(signal.strategy)
        if record is None:
            decision = self.engine.reject(
                signal, RiskReason.UNKNOWN_STRATEGY,
                f"strategy {signal.strategy!r} has no active configuration")
        else:
            profile_name = record.spec.risk_profile_ref
            profile = self.pipeline.profiles.get(profile_name)
            if profile is None:
                decision = self.engine.reject(
                    signal, RiskReason.NO_RISK_PROFILE,
                    f"RiskProfile {profile_name!r} of strategy {signal.strategy!r} not found",
                    profile_name)
            else:
                decision = self.engine.evaluate(signal, profile_name, profile.spec, self.clock())
        topic = Topics.SIGNALS_VALIDATED if decision.approved else Topics.SIGNALS_REJECTED
        if not decision.approved:
            log.info("rejected %s %s %s x%d: %s %s", signal.strategy, signal.side,
                     signal.symbol, signal.quantity, decision.reason, decision.message)
        return Output(topic, signal.strategy, decision)

    def on_control(self, control: Control) -> Iterable[Output]:
        if self.engine.apply_control(control):
            log.warning("control applied: %s %s/%s value=%s", control.command,
                        control.target_kind, control.target, control.value)
        return ()

    def save_state(self) -> bytes | None:
        return self.engine.state.to_json()

    def load_state(self, data: bytes) -> None:
        self.engine = self._engine(RiskState.from_json(data))
