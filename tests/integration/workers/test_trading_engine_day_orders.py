"""Day orders on the paper trading engine, on real Kafka and PostgreSQL: an order that did
not fill on its IST day expires (published on ``orders.rejected`` as a cancellation) and
never fills on a later day, whatever the next morning's prices."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from alphaspt.brokers.paper import EXPIRED
from alphaspt.core.clock import ist_day, ist_day_start
from alphaspt.core.config import Settings
from alphaspt.core.events import (
    CANCELLED_PREFIX,
    OrderRejected,
    OrderType,
    RiskDecision,
    RiskReason,
    Side,
    Signal,
    Tick,
    Topics,
)
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming import EventProducer, StreamProcessor
from alphaspt.workers.common import ConfigSource, stage_config
from alphaspt.workers.trading_engine import TradingEngine
from tests.integration.workers.profiles import ALL_DAY
from tests.support.topics import strategy_events
from tests.support.waiting import until

pytestmark = pytest.mark.integration

S = 1_000_000_000
DAY = ist_day(time.time_ns()) + 1000
"""An IST day later than any other test's ticks on the session's shared ``market.ticks``
(wall-clock tests): the engine rolls over to this test's days, not past them. The engine
runs on the event clock (a replay's): on the wall clock it dead-letters ticks from the
future, as the other tests' stages do with these."""


def at(day: int, hh: int, mm: int, ss: int = 0) -> int:
    return ist_day_start(day) + (hh * 3600 + mm * 60 + ss) * S


def test_orders_left_open_at_the_close_expire_and_never_fill_on_a_later_day(
    settings: Settings, configure: Callable[..., None],
    run_stage: Callable[[StreamProcessor], threading.Thread],
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    name, symbol, quiet = f"day-{tag.lower()}", f"DAY{tag}", f"QUIET{tag}"
    configure({name: TradingStrategySpec(strategy="momentum", instruments=(symbol, quiet),
                                         risk_profile_ref="rp")},
              {"rp": RiskProfileSpec.model_validate(ALL_DAY)})
    producer = EventProducer(settings.kafka)
    n = 0

    def tick(sym: str, ts: int, price: float) -> None:
        nonlocal n
        n += 1
        producer.send(Topics.TICKS, sym, Tick(event_id=f"{tag}-t{n}", exchange_ts=ts,
                                              ingest_ts=ts, symbol=sym, price=price))
        producer.flush()

    def approve(sid: str, sym: str, ts: int, qty: int, limit: float | None = None) -> str:
        signal = Signal(event_id=f"{name}-{sid}", exchange_ts=ts, strategy=name, symbol=sym,
                        side=Side.BUY, quantity=qty, ref_price=100.0,
                        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
                        limit_price=limit)
        producer.send(Topics.SIGNALS_VALIDATED, name, RiskDecision(
            event_id=signal.event_id, exchange_ts=ts, signal=signal, approved=True,
            reason=RiskReason.OK, message="", risk_profile="rp"))
        producer.flush()
        return signal.event_id

    url = settings.postgres.url.get_secret_value()  # type: ignore[union-attr]
    replay = settings.model_copy(update={"clock": "event"})  # its days are in the future
    engine = TradingEngine(replay, stage_config(replay, "trading-engine"),
                           ConfigSource(url, settings.namespace))
    run_stage(engine)

    tick(symbol, at(DAY, 15, 28), 100.0)
    resting = approve("resting", symbol, at(DAY, 15, 28, 10), 5, limit=99.0)
    late = approve("late", symbol, at(DAY, 15, 29, 50), 10)  # after the day's last tick
    silent = approve("silent", quiet, at(DAY, 15, 29, 50), 3)  # its symbol never ticks
    tick(symbol, at(DAY, 15, 29), 99.5)  # crosses neither; before the late order
    until("three orders placed", lambda: len(strategy_events(
        settings.kafka, Topics.ORDERS_SUBMITTED, name)) == 3)

    tick(symbol, at(DAY + 1, 9, 15), 98.0)  # would fill both, a day late

    def expired() -> dict[str, OrderRejected]:
        return {r.signal_id: r for r in strategy_events(settings.kafka, Topics.ORDERS_REJECTED,
                                                          name)}
    got = until("the day orders of the symbol expired",
                lambda: {resting, late} <= set(expired()))
    assert got
    rejected = expired()
    for sid, qty in ((resting, 5), (late, 10)):
        r = rejected[sid]
        assert r.reason == CANCELLED_PREFIX + EXPIRED
        assert (r.side, r.quantity) == (Side.BUY, qty), "the unfilled quantity released"
    assert silent not in rejected, "a day's grace: its symbol may still tick that day"

    tick(symbol, at(DAY + 2, 9, 15), 97.0)  # the roll after next sweeps the rest
    until("the silent symbol's order expired at the second roll",
          lambda: silent in expired())
    assert expired()[silent].quantity == 3
    tick(quiet, at(DAY + 2, 9, 16), 50.0)
    tick(symbol, at(DAY + 2, 9, 17), 96.0)
    time.sleep(2.0)
    assert strategy_events(settings.kafka, Topics.ORDERS_FILLED, name) == [], \
        "nothing filled a day late"
    # None of this test's orders is open. (The engine also read the session's other tests'
    # approvals; their symbols are on other ticks partitions, whose days did not roll.)
    assert [o for o in engine.broker.open_orders() if o.order.strategy == name] == []
