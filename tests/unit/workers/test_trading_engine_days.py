"""The trading engine's day roll is per ticks partition, event by event without Kafka.

Partitions are consumed interleaved: in a replay one can be days ahead of another, or
hold an earlier run's later-dated ticks. A roll taken from such a partition must not
expire or forget the orders of symbols on another one (CI saw a Friday 15:05 market order
expired although its symbol ticked until 15:29:59, because another partition's tick of a
later day rolled the engine's single day).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alphaspt.brokers.paper import EXPIRED
from alphaspt.core.clock import ist_day
from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Fill,
    OrderRejected,
    RiskDecision,
    RiskReason,
    Side,
    Signal,
    Tick,
    Topics,
)
from alphaspt.core.streaming import Output
from alphaspt.workers.common import stage_config
from alphaspt.workers.trading_engine import TradingEngine
from tests.unit.workers.test_square_off_flow import Source

IST = ZoneInfo("Asia/Kolkata")
NS = 1_000_000_000
FRI = int(datetime(2026, 1, 23, 15, 5, tzinfo=IST).timestamp()) * NS
LATER = FRI + 4 * 86_400 * NS  # Tuesday


class Engine:
    def __init__(self) -> None:
        settings = Settings(clock="event")
        self.engine = TradingEngine(settings, stage_config(settings, "trading-engine"),
                                    Source())  # type: ignore[arg-type]
        self.n = 0
        self.out: list[Output] = []

    def tick(self, partition: int, symbol: str, ts: int, price: float = 100.0) -> None:
        self.n += 1
        self.engine.current_partition = partition
        self.out += self.engine.process(Topics.TICKS, Tick(
            event_id=f"t{self.n}", exchange_ts=ts, symbol=symbol, price=price))

    def order(self, symbol: str, ts: int, sid: str) -> None:
        signal = Signal(event_id=sid, exchange_ts=ts, strategy="a", symbol=symbol,
                        side=Side.BUY, quantity=5, ref_price=100.0)
        self.engine.current_partition = 0  # signals.validated's, not a ticks partition
        self.out += self.engine.process(Topics.SIGNALS_VALIDATED, RiskDecision(
            event_id=sid, exchange_ts=ts, signal=signal, approved=True, reason=RiskReason.OK,
            message="", risk_profile="p"))

    def results(self, kind: type) -> list:  # type: ignore[type-arg]
        return [o.event for o in self.out if isinstance(o.event, kind)]


def test_a_later_day_on_another_partition_neither_expires_nor_forgets_an_order() -> None:
    e = Engine()
    e.tick(0, "SBIN", FRI)
    e.tick(0, "INFY", FRI)
    e.order("INFY", FRI, "s-filled")
    e.tick(0, "INFY", FRI + NS)  # fills s-filled
    e.order("SBIN", FRI + 2 * NS, "s-open")
    e.tick(1, "LATE", LATER)  # another partition, four days on
    assert not e.results(OrderRejected), "expired by another partition's day"
    e.order("INFY", FRI, "s-filled")  # redelivered: still known, not placed again
    e.tick(0, "SBIN", FRI + 3 * NS, 101.0)
    fills = e.results(Fill)
    assert sorted(f.client_order_id for f in fills) == sorted(
        {f.client_order_id for f in fills}), "an order filled twice"
    assert {f.symbol: f.exchange_ts for f in fills} == {"INFY": FRI + NS, "SBIN": FRI + 3 * NS}
    assert e.engine.days == {0: ist_day(FRI), 1: ist_day(LATER)}


def test_an_order_whose_symbol_stops_ticking_expires_at_its_partitions_roll_after_next() -> None:
    e = Engine()
    e.tick(0, "SBIN", FRI)
    e.tick(0, "INFY", FRI)
    e.order("SBIN", FRI + NS, "s-quiet")
    e.tick(0, "INFY", FRI + 86_400 * NS)  # Saturday: yesterday's order may still expire
    assert not e.results(OrderRejected)
    e.tick(0, "INFY", LATER)  # Tuesday on SBIN's partition: it is two days old
    (expired,) = e.results(OrderRejected)
    assert expired.client_order_id.startswith("AP") and expired.reason.endswith(EXPIRED)
    assert not e.results(Fill)


def test_the_days_survive_a_restore_and_an_old_single_day_record_still_loads() -> None:
    e = Engine()
    e.tick(0, "SBIN", FRI)
    e.tick(2, "TCS", LATER)
    record = e.engine.state_value(0, "meta")
    assert record is not None
    restored = Engine()
    restored.engine.restore_task(0, {"meta": record})
    assert restored.engine.days == {0: ist_day(FRI), 2: ist_day(LATER)}

    legacy = Engine()
    legacy.engine.restore_task(0, {"meta": str(ist_day(LATER)).encode()})
    legacy.tick(1, "TCS", FRI)  # not a new day for any partition
    assert legacy.engine.days == {}
    legacy.tick(1, "TCS", LATER + 86_400 * NS)
    assert legacy.engine.days == {1: ist_day(LATER) + 1}
