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
(3 IST days of fills), pending orders (open orders only; those
approved before the previous IST day are dropped at the day roll), approval
times (one minute).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping

from alphaspt.brokers.base import client_order_id
from alphaspt.core.clock import ist_day, ist_day_start
from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Codec,
    Command,
    Control,
    Event,
    Fill,
    Order,
    OrderRejected,
    Product,
    RiskDecision,
    RiskReason,
    Signal,
    Tick,
    Topics,
    now_ns,
)
from alphaspt.core.streaming import Output, ProcessorConfig
from alphaspt.market import calendar_from, instruments_from
from alphaspt.risk import RiskEngine, RiskEngineConfig, RiskState
from alphaspt.risk.squareoff import (
    SquareOffReason,
    closes,
    cutoff_ns,
    is_square_off,
    register,
    square_off_signal,
)
from alphaspt.workers.align import TickAlignment
from alphaspt.workers.common import ConfigSource, ConfiguredStage, PipelineConfig

log = logging.getLogger(__name__)


class RiskManager(ConfiguredStage):
    stage = "risk-manager"

    def __init__(self, settings: Settings, config: ProcessorConfig, source: ConfigSource,
                 *, clock: Callable[[], int] = now_ns,
                 engine_config: RiskEngineConfig | None = None, align_s: float = 5.0) -> None:
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
        self.cutoff_done: dict[str, int] = {}
        """RiskProfile → the last IST day its MIS positions were squared off at the cut-off
        (changelog ``cut/<profile>``; one key per profile)."""
        self._cutoff_memo: tuple[int, PipelineConfig, float] | None = None
        self.last_tick_ts = 0
        """The latest tick time consumed (changelog ``cut/@ticks``): how far the market
        is, for signals that arrive after their day's cut-off and a FLATTEN in a replay."""
        self.align = TickAlignment(self, Topics.SIGNALS_GENERATED, ahead_s=align_s)
        """So the cut-off's tick and the day roll come close to the signals of their time
        (a replay's ticks reach this stage minutes of market time before its signals)."""

    def _engine(self, state: RiskState) -> RiskEngine:
        return RiskEngine(state, config=self.engine_config, clock=self.clock,
                          client_order_id=client_order_id, calendar=self.calendar,
                          instruments=self.instruments)

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        if type(event) is Tick:
            return self._on_tick(event)
        state = self.engine.state
        day = state.day
        outputs: list[Output] = []
        if isinstance(event, Fill | Signal) and ist_day(event.exchange_ts) > day:
            outputs += self._roll_day(event.exchange_ts)
        if isinstance(event, Fill):
            if self.engine.on_fill(event):
                self.touch(f"trade/{event.trade_id}")
                self.touch(f"book/{event.strategy}")
                self.touch(f"pend/{event.client_order_id}")
        elif isinstance(event, Order):
            before = set(state.pending)
            self.engine.on_order_submitted(event)
            pending = state.pending.get(event.client_order_id)
            if pending is not None and is_square_off(event.signal_id):
                # The engine closed its exact position: that, not our estimate, is pending.
                pending.remaining = event.side.sign * event.quantity
                self.touch(f"pend/{event.client_order_id}")
            for coid in before.symmetric_difference(state.pending):
                self.touch(f"pend/{coid}")
        elif isinstance(event, OrderRejected):
            before = set(state.pending)
            self.engine.on_order_rejected(event)
            for coid in before - set(state.pending):
                self.touch(f"pend/{coid}")
        elif isinstance(event, Signal):
            self.align.on_lead(event.exchange_ts)
            oldest = next(iter(state.decisions), None)
            decided = self._decide(event)
            outputs.append(decided)
            self._touch_decision(event, oldest)
            outputs += self._behind_cutoff(event, decided)
        if state.day != day:
            self._touch_all()
        return outputs

    def _on_tick(self, tick: Tick) -> list[Output]:
        """The hot path (nearly everything this stage consumes is ticks): the price, the
        day roll and the cut-off, each looked at only when it can apply."""
        state = self.engine.state
        day = state.day
        ts = tick.exchange_ts
        tick_day = ist_day(ts)
        outputs = self._roll_day(ts) if tick_day > day else []
        self.align.on_tick(ts)
        self.engine.on_tick(tick)
        self.touch(f"px/{tick.symbol}")
        if ts > self.last_tick_ts:
            self.last_tick_ts = ts
            self.touch("cut/@ticks")
        if tick_day == state.day and ts >= self._next_cutoff(tick_day):
            outputs += self._cutoff(tick)
        if state.day != day:
            self._touch_all()
        return outputs

    def _roll_day(self, ts: int) -> list[Output]:
        """A tick, fill or signal of a later IST day: roll the state over to it."""
        state = self.engine.state
        day = state.day
        state.roll_day(ts, trade_id_retention_days=self.engine_config.trade_id_retention_days)
        return self._carried(day, state.day) if day else []

    def _touch_all(self) -> None:
        """The IST day rolled: pending, trade ids, day-start equity all changed."""
        for key in self.live_keys() | self.engine.state.state_keys():
            self.touch(key)

    def _touch_decision(self, signal: Signal, evicted: str | None) -> None:
        state = self.engine.state
        self.touch(f"dec/{signal.event_id}")
        self.touch(f"pend/{client_order_id(signal.event_id)}")
        self.touch(f"rate/{signal.strategy}")
        self.touch("meta")
        if evicted is not None and evicted not in state.decisions:
            self.touch(f"dec/{evicted}")
        for strategy in [s for s in state.strategy_order_times if s != signal.strategy]:
            self.touch(f"rate/{strategy}")  # pruned to the last minute

    # -- square-off (alphaspt.risk.squareoff) ----------------------------------------------

    def _mis_strategies(self, profile: str | None = None) -> list[str]:
        return sorted(name for name, rec in self.pipeline.strategies.items()
                      if rec.spec.product is Product.MIS
                      and (profile is None or rec.spec.risk_profile_ref == profile))

    def _next_cutoff(self, day: int) -> float:
        """The first cut-off instant on ``day`` of a profile not squared off for it yet
        (``inf``: none), remembered per day and configuration until a profile is squared
        off or the state restored, so a tick before it costs one comparison."""
        memo = self._cutoff_memo
        if memo is not None and memo[0] == day and memo[1] is self.pipeline:
            return memo[2]
        due = min((cutoff_ns(day, p.spec.mis_cutoff) for name, p in self.pipeline.profiles.items()
                   if not self._squared_off(name, day)), default=math.inf)
        self._cutoff_memo = (day, self.pipeline, due)
        return due

    def _cutoff(self, tick: Tick) -> list[Output]:
        """The first tick at or after a profile's ``misCutoff`` on its IST day squares off
        the MIS positions of the strategies bound to it (once per profile and day)."""
        day = ist_day(tick.exchange_ts)
        if day != self.engine.state.day:
            return []  # a late tick of an earlier day
        outputs: list[Output] = []
        for name in sorted(self.pipeline.profiles):
            if self._squared_off(name, day):
                continue
            spec = self.pipeline.profiles[name].spec
            at = cutoff_ns(day, spec.mis_cutoff)
            if tick.exchange_ts < at:
                continue
            self._mark_squared_off(name, day)
            outputs += self._square_off(
                self._mis_strategies(name), SquareOffReason.MIS_CUTOFF, day, at,
                f"square-off: MIS cut-off {spec.mis_cutoff:%H:%M} IST of RiskProfile {name}")
        return outputs

    def _behind_cutoff(self, signal: Signal, decided: Output) -> list[Output]:
        """A signal of an IST day whose cut-off the ticks have passed already, approved
        (stamped before the cut-off, it reached us late: ticks run ahead of signals): its
        pair is squared off right behind it, at the cut-off instant, so it is flat as if
        the signal had come in time. Keyed by the signal, so a redelivery adds nothing."""
        assert isinstance(decided.event, RiskDecision)
        record = self.pipeline.strategies.get(signal.strategy)
        if not decided.event.approved or is_square_off(signal.event_id) or record is None \
                or record.spec.product is not Product.MIS:
            return []
        profile = self.pipeline.profiles.get(record.spec.risk_profile_ref)
        if profile is None:
            return []
        day = ist_day(signal.exchange_ts)
        at = cutoff_ns(day, profile.spec.mis_cutoff)
        if self.last_tick_ts < at:
            return []
        return self._square_off(
            [signal.strategy], SquareOffReason.MIS_CUTOFF, f"{day}:{signal.event_id}", at,
            f"square-off: MIS cut-off {profile.spec.mis_cutoff:%H:%M} IST of RiskProfile "
            f"{record.spec.risk_profile_ref} (signal {signal.event_id} came after it)",
            symbol=signal.symbol)

    def _carried(self, ended: int, day: int) -> list[Output]:
        """An MIS position still open when the IST day rolled over (no tick came after the
        cut-off) is never carried: it is closed at the first event of the new day.

        Only for a profile whose cut-off did not fire on the last trading day up to
        ``ended``, and once per profile and trading day. Where it did fire, its square-offs
        may still be in flight (their fills behind the next day's first tick; they stay
        pending until then): the position is closing, not carried."""
        last = self._last_trading_day(ended)
        refs = sorted({rec.spec.risk_profile_ref for rec in self.pipeline.strategies.values()
                       if rec.spec.product is Product.MIS})
        outputs: list[Output] = []
        for ref in refs:
            if self._squared_off(ref, last):
                continue
            self._mark_squared_off(ref, last)
            outputs += self._square_off(self._mis_strategies(ref), SquareOffReason.MIS_CARRIED,
                                        day, ist_day_start(day),
                                        "square-off: MIS position carried over the IST day")
        for out in outputs:
            assert isinstance(out.event, RiskDecision)
            s = out.event.signal
            log.warning("MIS position of %s in %s was still open at the IST day roll-over; "
                        "squaring it off now (%s %d)", s.strategy, s.symbol, s.side, s.quantity)
        return outputs

    def _squared_off(self, profile: str, day: int) -> bool:
        """The MIS positions of ``profile``'s strategies were squared off for ``day`` (at
        its cut-off, or at the roll-over after it)."""
        return self.cutoff_done.get(profile, 0) >= day

    def _mark_squared_off(self, profile: str, day: int) -> None:
        self.cutoff_done[profile] = day
        self._cutoff_memo = None
        self.touch(f"cut/{profile}")

    def _last_trading_day(self, day: int) -> int:
        """The last trading day on or before ``day`` (every day without a calendar)."""
        if self.calendar is None:
            return day
        session = self.calendar.latest_session(ist_day_start(day + 1) - 1)
        return session.day if session is not None else day

    def _flatten(self, control: Control) -> list[Output]:
        """``FLATTEN``: square off every position (any product) of the targets."""
        state = self.engine.state
        kind, target = control.target_kind, control.target
        if kind == "TradingStrategy" and target != "*":
            strategies = [target]
        elif kind == "RiskProfile" and target != "*":
            strategies = sorted(n for n, r in self.pipeline.strategies.items()
                                if r.spec.risk_profile_ref == target)
        elif kind in ("*", "TradingStrategy", "RiskProfile"):
            strategies = sorted(state.strategies() | set(self.pipeline.strategies)
                                | {p.strategy for p in state.pending.values()})
        else:
            log.warning("FLATTEN of unknown target kind %r ignored", kind)
            return []
        # In a replay (event clock) the market is at the last tick consumed, not at now.
        ts = self.last_tick_ts if self.event_time and self.last_tick_ts else control.exchange_ts
        who = f" by {control.issued_by}" if control.issued_by else ""
        return self._square_off(strategies, SquareOffReason.FLATTEN, control.event_id, ts,
                                f"square-off: FLATTEN {kind}/{target}{who}")

    def _square_off(self, strategies: list[str], reason: SquareOffReason, key: object,
                    ts: int, message: str, symbol: str | None = None) -> list[Output]:
        state = self.engine.state
        outputs: list[Output] = []
        for close in closes(state, strategies):
            if symbol is not None and close.symbol != symbol:
                continue
            record = self.pipeline.strategies.get(close.strategy)
            mark = state.last_prices.get(close.symbol)
            if mark is None:
                pos = state.positions.get(close.strategy, {}).get(close.symbol)
                mark = pos.avg_price if pos is not None and pos.avg_price > 0 else 0.0
            signal = square_off_signal(close, reason, key, ts, mark,
                                       record.spec.product if record else Product.MIS)
            if signal.event_id in state.decisions:
                continue  # a redelivered trigger: this square-off was emitted already
            profile = record.spec.risk_profile_ref if record else None
            oldest = next(iter(state.decisions), None)
            cached, _ = register(state, signal, client_order_id(signal.event_id), profile,
                                 message, self.engine_config.decision_cache_size)
            self._touch_decision(signal, oldest)
            log.warning("%s: %s %s %s x%d", message, close.strategy, signal.side,
                        close.symbol, signal.quantity)
            outputs.append(Output(Topics.SIGNALS_VALIDATED, close.strategy, RiskDecision(
                event_id=signal.event_id, exchange_ts=ts, ingest_ts=self.clock(),
                signal=signal, approved=True, reason=cached.reason, message=message,
                risk_profile=profile)))
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
                decision = self.engine.evaluate(
                    signal, profile_name, profile.spec, now,
                    squared_off=self._squared_off(profile_name, ist_day(now)))
        topic = Topics.SIGNALS_VALIDATED if decision.approved else Topics.SIGNALS_REJECTED
        if not decision.approved:
            log.info("rejected %s %s %s x%d: %s %s", signal.strategy, signal.side,
                     signal.symbol, signal.quantity, decision.reason, decision.message)
        return Output(topic, signal.strategy, decision)

    def on_control(self, control: Control) -> Iterable[Output]:
        if control.command is Command.FLATTEN:
            return self._flatten(control)
        if self.engine.apply_control(control):
            self.touch("meta")
            log.warning("control applied: %s %s/%s value=%s", control.command,
                        control.target_kind, control.target, control.value)
        return ()

    def on_idle(self) -> Iterable[Output]:
        self.align.on_idle()
        return ()

    def state_value(self, task: int, key: str) -> bytes | None:
        if key == "cut/@ticks":
            return str(self.last_tick_ts).encode()
        if key.startswith("cut/"):
            day = self.cutoff_done.get(key.removeprefix("cut/"))
            return None if day is None else str(day).encode()
        return self.engine.state.export(key)

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        own = {k: v for k, v in items.items() if k.startswith("cut/")}
        self.last_tick_ts = int(own.pop("cut/@ticks", b"0"))
        self.cutoff_done = {k.removeprefix("cut/"): int(v) for k, v in own.items()}
        self._cutoff_memo = None
        self.engine = self._engine(RiskState.from_items(
            {k: v for k, v in items.items() if not k.startswith("cut/")}))

    def drop_task(self, task: int) -> None:
        self.align.reset()
        self.engine = self._engine(RiskState())
        self.cutoff_done = {}
        self._cutoff_memo = None
        self.last_tick_ts = 0
