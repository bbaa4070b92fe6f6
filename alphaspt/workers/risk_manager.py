"""Risk manager: trading.signals.generated → validated | rejected, with a reason code.

Limits come from each strategy's RiskProfile (PostgreSQL, reloaded on CONFIG_CHANGED).
Positions (from fills), pending orders, order rates and daily P&L live in ``RiskState``,
whose keys (``RiskState.state_keys``) are the changelog: each event touches only the keys
it can change, so a checkpoint writes a few small records, not the whole state. A
KILL_SWITCH on ``control.commands`` is applied as it is consumed: it takes effect on the
next signal.

Rule time is the run's clock (``Settings.clock``): the signal's exchange timestamp for
replays and the mock market (``event``; the mock runs on a simulated session clock), the
wall clock for live trading (``wall``). The exchange's rules come from ``Settings.market``
(trading calendar, instruments file) and the account's order caps from ``Settings.risk``.

De-duplication: a redelivered signal gets its remembered decision (``dec/<id>``), a
redelivered fill is known by its trade id (``trade/<id>``).

Bounds: decisions ``decision_cache_size`` (2,000), trade ids ``trade_id_retention_days``
(3 IST days of fills), pending orders (open orders only; cleared at the day roll), approval
times (one minute).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

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
from alphaspt.market import calendar_from, instruments_from
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
        self.event_time = settings.clock == "event"
        caps = settings.risk
        self.engine_config = engine_config or RiskEngineConfig(
            decision_cache_size=2000,
            account_max_orders_per_second=caps.account_max_orders_per_second,
            account_max_orders_per_minute=caps.account_max_orders_per_minute,
            account_max_orders_per_day=caps.account_max_orders_per_day)
        self.calendar = calendar_from(settings.market)
        self.instruments = instruments_from(settings.market)
        self.engine = self._engine(RiskState())

    def _engine(self, state: RiskState) -> RiskEngine:
        return RiskEngine(state, config=self.engine_config, clock=self.clock,
                          client_order_id=client_order_id, calendar=self.calendar,
                          instruments=self.instruments)

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        state = self.engine.state
        day = state.day
        outputs: list[Output] = []
        if isinstance(event, Tick):
            self.engine.on_tick(event)
            self.touch(f"px/{event.symbol}")
        elif isinstance(event, Fill):
            if self.engine.on_fill(event):
                self.touch(f"trade/{event.trade_id}")
                self.touch(f"book/{event.strategy}")
                self.touch(f"pend/{event.client_order_id}")
        elif isinstance(event, Order):
            before = set(state.pending)
            self.engine.on_order_submitted(event)
            for coid in before.symmetric_difference(state.pending):
                self.touch(f"pend/{coid}")
        elif isinstance(event, OrderRejected):
            before = set(state.pending)
            self.engine.on_order_rejected(event)
            for coid in before - set(state.pending):
                self.touch(f"pend/{coid}")
        elif isinstance(event, Signal):
            oldest = next(iter(state.decisions), None)
            outputs.append(self._decide(event))
            self.touch(f"dec/{event.event_id}")
            self.touch(f"pend/{client_order_id(event.event_id)}")
            self.touch(f"rate/{event.strategy}")
            self.touch("meta")
            if oldest is not None and oldest not in state.decisions:
                self.touch(f"dec/{oldest}")
            for strategy in [s for s in state.strategy_order_times if s != event.strategy]:
                self.touch(f"rate/{strategy}")  # pruned to the last minute
        if state.day != day:  # the IST day rolled: pending, trade ids, day-start equity
            for key in self.live_keys() | state.state_keys():
                self.touch(key)
        return outputs

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
                now = signal.exchange_ts if self.event_time else self.clock()
                if self.event_time:
                    # The day rolls before this price lands, so the previous close
                    # (the circuit limit's reference) is the previous day's last price.
                    self.engine.state.roll_day(
                        now, trade_id_retention_days=self.engine_config.trade_id_retention_days)
                    # In a replay the signal's price *is* the market at its time: the last
                    # price consumed here depends on how fast the ticks topic was read.
                    self.engine.state.update_price(signal.symbol, signal.ref_price)
                    self.touch(f"px/{signal.symbol}")
                decision = self.engine.evaluate(signal, profile_name, profile.spec, now)
        topic = Topics.SIGNALS_VALIDATED if decision.approved else Topics.SIGNALS_REJECTED
        if not decision.approved:
            log.info("rejected %s %s %s x%d: %s %s", signal.strategy, signal.side,
                     signal.symbol, signal.quantity, decision.reason, decision.message)
        return Output(topic, signal.strategy, decision)

    def on_control(self, control: Control) -> Iterable[Output]:
        if self.engine.apply_control(control):
            self.touch("meta")
            log.warning("control applied: %s %s/%s value=%s", control.command,
                        control.target_kind, control.target, control.value)
        return ()

    def state_value(self, task: int, key: str) -> bytes | None:
        return self.engine.state.export(key)

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        self.engine = self._engine(RiskState.from_items(dict(items)))

    def drop_task(self, task: int) -> None:
        self.engine = self._engine(RiskState())
