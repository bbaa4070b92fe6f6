"""Kill switch and FLATTEN through the real risk manager, trading engine and portfolio
manager on real Kafka, PostgreSQL and Redis: working orders cancelled, closing allowed,
opening refused, every position flat in Redis, nothing placed twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from alphaspt.core.cache import PortfolioCacheWriter, portfolio_key
from alphaspt.core.config import Settings
from alphaspt.core.events import (
    CANCELLED_PREFIX,
    Command,
    Control,
    Fill,
    Order,
    OrderRejected,
    OrderType,
    RiskDecision,
    RiskReason,
    Side,
    Signal,
    Tick,
    Topics,
    now_ns,
)
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming import EventProducer, StreamProcessor
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.risk.squareoff import is_square_off
from alphaspt.workers.common import ConfigSource, stage_config
from alphaspt.workers.portfolio_manager import PortfolioManager
from alphaspt.workers.risk_manager import RiskManager
from alphaspt.workers.trading_engine import TradingEngine
from tests.integration.workers.profiles import ALL_DAY
from tests.support.topics import strategy_events
from tests.support.waiting import until

pytestmark = pytest.mark.integration


class Pipeline:
    def __init__(self, settings: Settings, name: str, symbol: str) -> None:
        self.settings = settings
        self.name = name
        self.symbol = symbol
        self.producer = EventProducer(settings.kafka)
        self.n = 0

    def tick(self, price: float) -> None:
        self.n += 1
        self.producer.send(Topics.TICKS, self.symbol, Tick(
            event_id=f"t-{self.name}-{self.n}", exchange_ts=now_ns(), symbol=self.symbol,
            price=price))
        self.producer.flush()

    def signal(self, sid: str, side: Side, qty: int, limit: float | None = None) -> str:
        event_id = f"{self.name}-{sid}"
        self.producer.send(Topics.SIGNALS_GENERATED, self.name, Signal(
            event_id=event_id, exchange_ts=now_ns(), strategy=self.name, symbol=self.symbol,
            side=side, quantity=qty, ref_price=100.0,
            order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
            limit_price=limit))
        self.producer.flush()
        return event_id

    def control(self, control: Control) -> None:
        self.producer.send(Topics.CONTROL, control.target, control)
        self.producer.flush()

    def decision(self, signal_id: str) -> RiskDecision:
        def find() -> RiskDecision | None:
            for topic in (Topics.SIGNALS_VALIDATED, Topics.SIGNALS_REJECTED):
                for d in strategy_events(self.settings.kafka, topic, self.name):
                    assert isinstance(d, RiskDecision)
                    if d.event_id == signal_id:
                        return d
            return None
        got = until(f"a decision on {signal_id}", find)
        assert isinstance(got, RiskDecision)
        return got

    def orders(self) -> list[Order]:
        return [o for o in strategy_events(self.settings.kafka, Topics.ORDERS_SUBMITTED, self.name)
                if isinstance(o, Order)]

    def fills(self) -> list[Fill]:
        return [f for f in strategy_events(self.settings.kafka, Topics.ORDERS_FILLED, self.name)
                if isinstance(f, Fill)]

    def rejected(self) -> list[OrderRejected]:
        return [r for r in strategy_events(self.settings.kafka, Topics.ORDERS_REJECTED, self.name)
                if isinstance(r, OrderRejected)]


def test_kill_switch_cancels_working_orders_and_flatten_leaves_every_position_flat(
    settings: Settings, configure: Callable[..., None], redis_url: str,
    run_stage: Callable[[StreamProcessor], threading.Thread],
) -> None:
    name = f"k-{settings.namespace}"
    symbol = name.split("-", 1)[1].upper()
    profile = f"kp-{settings.namespace}"
    configure(
        {name: TradingStrategySpec(strategy="momentum", instruments=(symbol,),
                                   risk_profile_ref=profile)},
        # No cut-off today: this test is about the kill switch, whatever the hour.
        {profile: RiskProfileSpec.model_validate(ALL_DAY)},
    )
    url = settings.postgres.url.get_secret_value()  # type: ignore[union-attr]
    source = ConfigSource(url, settings.namespace)
    p = Pipeline(settings, name, symbol)
    p.tick(100.0)
    risk = RiskManager(settings, stage_config(settings, "risk-manager"), source)
    engine = TradingEngine(settings, stage_config(settings, "trading-engine"), source)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    portfolio = PortfolioManager(settings, stage_config(settings, "portfolio-manager"), source,
                                 PortfolioCacheWriter(r))
    for stage in (risk, engine, portfolio):
        run_stage(stage)
    until("the price at the risk manager", lambda: symbol in risk.engine.state.last_prices)

    opened = p.signal("open", Side.BUY, 10)
    resting = p.signal("resting", Side.BUY, 5, limit=96.0)
    assert p.decision(opened).approved and p.decision(resting).approved
    until("both orders placed", lambda: len(p.orders()) == 2)
    p.tick(100.5)  # fills the MARKET order; the LIMIT at 96 keeps working
    until("the opening fill", lambda: len(p.fills()) == 1)
    assert p.fills()[0].quantity == 10

    p.control(Control(event_id=f"kill-{name}", exchange_ts=now_ns(),
                      command=Command.KILL_SWITCH, target_kind="RiskProfile", target=profile))
    cancelled = until("the working order cancelled", lambda: [
        x for x in p.rejected() if x.reason.startswith(CANCELLED_PREFIX)])
    assert isinstance(cancelled, list) and len(cancelled) == 1
    c = cancelled[0]
    assert c.signal_id == resting and c.reason == "cancelled: kill switch"
    assert (c.side, c.quantity) == (Side.BUY, 5)
    until("the cancelled quantity released in the risk state",
          lambda: risk.engine.state.pending_quantity(name, symbol) == 0)
    assert risk.engine.state.position(name, symbol) == 10

    opening = p.decision(p.signal("more", Side.BUY, 1))
    assert not opening.approved and opening.reason is RiskReason.KILL_SWITCH
    closing = p.decision(p.signal("close-some", Side.SELL, 4))
    # A risk-reducing order is allowed while the kill switch is on (FIA/SEBI guidance).
    assert closing.approved, closing
    until("the closing order placed", lambda: any(
        o.signal_id == closing.signal.event_id for o in p.orders()))
    p.tick(100.0)  # it fills on the next tick
    until("the closing fill in the risk state",
          lambda: risk.engine.state.position(name, symbol) == 6)

    flatten = Control(event_id=f"flatten-{name}", exchange_ts=now_ns(),
                      command=Command.FLATTEN, target_kind="TradingStrategy", target=name)
    p.control(flatten)
    squares = until("the square-off order", lambda: [
        o for o in p.orders() if is_square_off(o.signal_id)])
    assert isinstance(squares, list) and len(squares) == 1
    held = 6
    assert (squares[0].side, squares[0].quantity, squares[0].order_type) == (
        Side.SELL, held, OrderType.MARKET)
    p.tick(100.0)  # the square-off fills on the next tick
    until("flat in the risk state", lambda: risk.engine.state.position(name, symbol) == 0)

    def flat_in_redis() -> bool:
        h = r.hgetall(portfolio_key(name))
        return bool(h) and int(h.get(f"position:{symbol}", "0")) == 0 and \
            int(h.get("fills", "0")) >= 2
    until("a flat portfolio in Redis", flat_in_redis)

    # The same command delivered again, and a new FLATTEN once flat: nothing new.
    p.control(flatten)
    p.control(Control(event_id=f"flatten2-{name}", exchange_ts=now_ns(),
                      command=Command.FLATTEN, target_kind="RiskProfile", target=profile))
    until("both commands consumed", lambda: len(
        [m for m in read_to_end(settings.kafka, Topics.CONTROL)
         if m.key() in (name.encode(), profile.encode())]) >= 3)
    p.tick(100.0)
    time.sleep(3.0)
    orders = p.orders()
    assert len({o.client_order_id for o in orders}) == len(orders) == 4, [
        (o.signal_id, o.side, o.quantity) for o in orders]
    fills = p.fills()
    assert len({f.trade_id for f in fills}) == len(fills)
    net = sum(f.side.sign * f.quantity for f in fills)
    assert net == 0, "every position flat from the fills themselves"
    assert int(r.hgetall(portfolio_key(name)).get(f"position:{symbol}", "0")) == 0
