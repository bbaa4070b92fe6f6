"""Trading engine: validated signals → orders at a broker → fills.

Each order's client id derives from its signal id (``client_order_id``), so a replayed or
redelivered signal can never become a second order: the broker answers a repeated client
id with the existing order. With the paper broker the whole broker state is checkpointed
in ``alphaspt.state`` inside the same transaction as the outputs and offsets, so placing,
filling and publishing are exactly once together.

Paper fills are decided in event time, not arrival time: an order fills on the first tick
of its symbol *after* its signal's exchange timestamp, even when that tick reached the
engine before the signal did (ticks and signals come from different topics). The engine
keeps the last ``history`` ticks of each symbol for this, in its checkpointed state, so a
run's fills do not depend on how the topics happen to interleave.

Live (Kite) execution is not part of this build: a Live strategy's orders are rejected
with a reason saying so, never silently dropped or paper-filled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import msgspec

from alphaspt.brokers.base import client_order_id
from alphaspt.brokers.paper import PaperBroker, PaperConfig
from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Codec,
    Event,
    Fill,
    Order,
    OrderRejected,
    RiskDecision,
    Tick,
    Topics,
    now_ns,
    stable_id,
)
from alphaspt.core.specs import Mode
from alphaspt.core.streaming import Output, ProcessorConfig
from alphaspt.workers.common import ConfigSource, ConfiguredStage

log = logging.getLogger(__name__)


class TradingEngine(ConfiguredStage):
    stage = "trading-engine"

    def __init__(self, settings: Settings, config: ProcessorConfig, source: ConfigSource,
                 paper: PaperConfig | None = None, *, history: int = 16) -> None:
        super().__init__(settings, config, {
            Topics.SIGNALS_VALIDATED: Codec(RiskDecision),
            Topics.TICKS: Codec(Tick),
        }, source)
        self.paper_config = paper or PaperConfig()
        self.broker = PaperBroker(self.paper_config)
        self.history = history
        self.recent: dict[str, list[Tick]] = {}

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        if isinstance(event, Tick):
            recent = self.recent.setdefault(event.symbol, [])
            recent.append(event)
            del recent[:-self.history]
            return [self._result(r) for r in self.broker.on_tick(event)]
        assert isinstance(event, RiskDecision)
        if not event.approved:
            return ()
        return self._place(event)

    def _place(self, decision: RiskDecision) -> list[Output]:
        signal = decision.signal
        coid = client_order_id(signal.event_id)
        record = self.pipeline.strategies.get(signal.strategy)
        mode = record.spec.mode if record is not None else Mode.PAPER
        if mode is Mode.LIVE:
            rejected = OrderRejected(
                event_id=stable_id("live-unavailable", coid), exchange_ts=signal.exchange_ts,
                client_order_id=coid, signal_id=signal.event_id, strategy=signal.strategy,
                symbol=signal.symbol,
                reason="Live trading through Kite is not available in this build",
            )
            return [Output(Topics.ORDERS_REJECTED, signal.strategy, rejected)]
        order = Order(
            event_id=coid, exchange_ts=signal.exchange_ts, ingest_ts=now_ns(),
            client_order_id=coid, signal_id=signal.event_id, strategy=signal.strategy,
            symbol=signal.symbol, side=signal.side, quantity=signal.quantity,
            order_type=signal.order_type, limit_price=signal.limit_price, mode=mode.value,
        )
        ack = self.broker.place(order)
        if ack.duplicate:
            log.info("signal %s already placed as %s; not placing again", signal.event_id, coid)
            return []
        if ack.rejection is not None:
            return [Output(Topics.ORDERS_REJECTED, signal.strategy, ack.rejection)]
        outputs = [Output(Topics.ORDERS_SUBMITTED, signal.strategy, order)]
        # Ticks after the signal that arrived before it: the order fills on the first.
        for tick in self.recent.get(order.symbol, ()):
            if tick.exchange_ts > order.exchange_ts:
                outputs += [self._result(r) for r in self.broker.on_tick(tick)]
        return outputs

    @staticmethod
    def _result(result: Fill | OrderRejected) -> Output:
        topic = Topics.ORDERS_FILLED if isinstance(result, Fill) else Topics.ORDERS_REJECTED
        return Output(topic, result.strategy, result)

    def save_state(self) -> bytes | None:
        return _STATE_ENCODER.encode(
            _EngineState(broker=self.broker.snapshot(), recent=self.recent))

    def load_state(self, data: bytes) -> None:
        state = _STATE_DECODER.decode(data)
        self.broker = PaperBroker.restore(state.broker, self.paper_config)
        self.recent = {k: list(v) for k, v in state.recent.items()}


class _EngineState(msgspec.Struct, frozen=True):
    broker: bytes
    recent: dict[str, list[Tick]]


_STATE_ENCODER = msgspec.json.Encoder()
_STATE_DECODER = msgspec.json.Decoder(_EngineState)
