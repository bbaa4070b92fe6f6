"""The risk manager's and trading engine's square-off logic, event by event, without Kafka:
the stages' ``process`` is a plain function of its inputs."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from alphaspt.core.clock import ist_day
from alphaspt.core.config import Settings
from alphaspt.core.db.repository import RiskProfileRecord, StrategyRecord
from alphaspt.core.events import (
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
)
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming import Output
from alphaspt.risk.squareoff import SquareOffReason, cutoff_ns, is_square_off, square_off_id
from alphaspt.workers.common import PipelineConfig, stage_config
from alphaspt.workers.risk_manager import RiskManager
from alphaspt.workers.trading_engine import TradingEngine

IST = ZoneInfo("Asia/Kolkata")
NS = 1_000_000_000
T0 = int(datetime(2025, 1, 6, 15, 10, tzinfo=IST).timestamp()) * NS
DAY = ist_day(T0)
CUT = cutoff_ns(DAY, RiskProfileSpec().mis_cutoff)
WINDOW = {"start": "00:00", "end": "23:59:59"}


class Source:
    def __init__(self) -> None:
        spec = TradingStrategySpec(strategy="momentum", instruments=("SBIN", "INFY"),
                                   risk_profile_ref="p")
        self.config = PipelineConfig(
            strategies={n: StrategyRecord("default", n, spec, 1, "h", False)
                        for n in ("a", "b")},
            profiles={"p": RiskProfileRecord(
                "default", "p", RiskProfileSpec.model_validate({"tradingWindow": WINDOW}),
                1, "h", False)})

    def load(self) -> PipelineConfig:
        return self.config

    def change_profile(self, **update: object) -> None:
        """Profile ``p`` with ``update`` applied (a new generation), as after an apply."""
        record = self.config.profiles["p"]
        self.config = PipelineConfig(strategies=self.config.strategies, profiles={
            "p": RiskProfileRecord(record.namespace, record.name,
                                   record.spec.model_copy(update=update), 2, "h2", False)})


class Flow:
    """Both stages wired by hand: every output goes to the stages that consume its topic."""

    def __init__(self) -> None:
        settings = Settings(clock="event")
        source = Source()
        self.risk = RiskManager(settings, stage_config(settings, "risk-manager"),
                                source)  # type: ignore[arg-type]
        self.engine = TradingEngine(settings, stage_config(settings, "trading-engine"),
                                    source)  # type: ignore[arg-type]
        self.log: list[Output] = []
        self.n = 0

    def send(self, topic: str, event: object) -> None:
        queue = [(topic, event)]
        while queue:
            topic, event = queue.pop(0)
            outs: list[Output] = []
            if topic in self.risk.inputs:
                outs += list(self.risk.process(topic, event))  # type: ignore[arg-type]
            if topic in self.engine.inputs:
                outs += list(self.engine.process(topic, event))  # type: ignore[arg-type]
            self.log += outs
            queue += [(o.topic, o.event) for o in outs]

    def tick(self, symbol: str, price: float, ts: int) -> None:
        self.n += 1
        self.send(Topics.TICKS, Tick(event_id=f"t{self.n}", exchange_ts=ts, symbol=symbol,
                                     price=price))

    def signal(self, strategy: str, symbol: str, side: Side, qty: int, ts: int,
               limit: float | None = None) -> str:
        self.n += 1
        sid = f"s{self.n}"
        self.send(Topics.SIGNALS_GENERATED, Signal(
            event_id=sid, exchange_ts=ts, strategy=strategy, symbol=symbol, side=side,
            quantity=qty, ref_price=100.0, limit_price=limit,
            order_type=OrderType.MARKET if limit is None else OrderType.LIMIT))
        return sid

    def of(self, topic: str, kind: type) -> list:  # type: ignore[type-arg]
        return [o.event for o in self.log if o.topic == topic and isinstance(o.event, kind)]

    def net(self, strategy: str, symbol: str) -> int:
        return sum(f.side.sign * f.quantity for f in self.of(Topics.ORDERS_FILLED, Fill)
                   if f.strategy == strategy and f.symbol == symbol)


def test_the_cutoff_cancels_working_orders_and_closes_every_mis_position_once() -> None:
    f = Flow()
    f.tick("SBIN", 100.0, T0)
    f.tick("INFY", 100.0, T0)
    f.signal("a", "SBIN", Side.BUY, 10, T0 + NS)
    f.signal("b", "INFY", Side.SELL, 7, T0 + NS)
    resting = f.signal("a", "INFY", Side.BUY, 5, T0 + NS, limit=97.0)
    f.tick("SBIN", 100.5, T0 + 2 * NS)
    f.tick("INFY", 100.0, T0 + 2 * NS)
    assert (f.net("a", "SBIN"), f.net("b", "INFY")) == (10, -7)
    assert f.of(Topics.SIGNALS_VALIDATED, RiskDecision)[-1].approved

    f.tick("SBIN", 101.0, CUT - NS)  # before the cut-off: nothing
    assert not [o for o in f.of(Topics.ORDERS_SUBMITTED, Order) if is_square_off(o.signal_id)]
    f.tick("SBIN", 101.0, CUT + 3 * NS)  # the first tick past it
    squares = [o for o in f.of(Topics.ORDERS_SUBMITTED, Order) if is_square_off(o.signal_id)]
    assert {(o.strategy, o.symbol, o.side, o.quantity) for o in squares} == {
        ("a", "SBIN", Side.SELL, 10), ("b", "INFY", Side.BUY, 7)}
    assert all(o.exchange_ts == CUT and o.order_type is OrderType.MARKET for o in squares)
    assert {o.signal_id for o in squares} == {
        square_off_id(SquareOffReason.MIS_CUTOFF, DAY, "a", "SBIN"),
        square_off_id(SquareOffReason.MIS_CUTOFF, DAY, "b", "INFY")}
    cancelled = [r for r in f.of(Topics.ORDERS_REJECTED, OrderRejected)
                 if r.signal_id == resting]
    assert len(cancelled) == 1 and cancelled[0].reason.startswith("cancelled: square-off")
    assert (cancelled[0].side, cancelled[0].quantity) == (Side.BUY, 5)
    # The square-off refusal for a's INFY (only a working order there) releases its pending.
    f.tick("SBIN", 101.0, CUT + 4 * NS)
    f.tick("INFY", 101.0, CUT + 4 * NS)
    assert f.net("a", "SBIN") == 0 and f.net("b", "INFY") == 0 and f.net("a", "INFY") == 0
    st = f.risk.engine.state
    assert st.pending == {} and st.position("a", "SBIN") == 0

    before = len(f.log)
    f.tick("SBIN", 101.0, CUT + 5 * NS)  # later ticks, and the same tick again
    f.tick("SBIN", 101.0, CUT + 3 * NS)
    assert [o for o in f.log[before:] if o.topic != Topics.ORDERS_FILLED] == []

    # After the cut-off an opening MIS signal is refused (by its own time)...
    opening = f.signal("a", "SBIN", Side.BUY, 1, CUT + 6 * NS)
    refused = [d for d in f.of(Topics.SIGNALS_REJECTED, RiskDecision) if d.event_id == opening]
    assert refused and refused[0].reason is RiskReason.PRODUCT_CUTOFF
    # ...and one stamped before it that arrives late (ticks run ahead of signals) is
    # placed and squared off right behind, at the cut-off instant: flat all the same.
    late = f.signal("a", "SBIN", Side.BUY, 3, CUT - 2 * NS)
    assert [d.approved for d in f.of(Topics.SIGNALS_VALIDATED, RiskDecision)
            if d.event_id == late] == [True]
    behind = square_off_id(SquareOffReason.MIS_CUTOFF, f"{DAY}:{late}", "a", "SBIN")
    orders = {o.signal_id: o for o in f.of(Topics.ORDERS_SUBMITTED, Order)}
    assert (orders[behind].side, orders[behind].quantity, orders[behind].exchange_ts) == (
        Side.SELL, 3, CUT)
    f.tick("SBIN", 101.0, CUT + 7 * NS)
    assert f.net("a", "SBIN") == 0
    again = len(f.log)
    f.send(Topics.SIGNALS_GENERATED, next(
        d.signal for d in f.of(Topics.SIGNALS_VALIDATED, RiskDecision) if d.event_id == late))
    assert [o.topic for o in f.log[again:]] == [Topics.SIGNALS_VALIDATED], "redelivered"


def test_a_position_left_open_at_the_day_roll_is_closed_at_the_next_days_first_event() -> None:
    f = Flow()
    f.tick("SBIN", 100.0, T0)
    f.signal("a", "SBIN", Side.BUY, 10, T0 + NS)
    f.tick("SBIN", 100.0, T0 + 2 * NS)
    assert f.net("a", "SBIN") == 10
    # The profile's cut-off is not reached (the day's last tick is at 15:10).
    nxt = int(datetime(2025, 1, 7, 9, 15, tzinfo=IST).timestamp()) * NS
    f.tick("INFY", 100.0, nxt)
    carried = [o for o in f.of(Topics.ORDERS_SUBMITTED, Order) if is_square_off(o.signal_id)]
    assert [(o.symbol, o.side, o.quantity) for o in carried] == [("SBIN", Side.SELL, 10)]
    assert carried[0].signal_id == square_off_id(SquareOffReason.MIS_CARRIED, DAY + 1, "a",
                                                 "SBIN")
    f.tick("SBIN", 99.0, nxt + NS)
    assert f.net("a", "SBIN") == 0


def test_a_cutoff_square_off_still_in_flight_at_the_day_roll_is_not_squared_off_again() -> None:
    """Ticks run ahead of fills: the next day's first tick can reach the risk manager
    before the fill of the cut-off's square-off. The position is closing, not carried."""
    f = Flow()
    f.tick("SBIN", 100.0, T0)
    f.signal("a", "SBIN", Side.BUY, 10, T0 + NS)
    f.tick("SBIN", 100.0, T0 + 2 * NS)
    assert f.net("a", "SBIN") == 10

    def risk_only(topic: str, event: object) -> list[Output]:
        return list(f.risk.process(topic, event))  # type: ignore[arg-type]

    cut = risk_only(Topics.TICKS, Tick(event_id="c", exchange_ts=CUT + NS, symbol="SBIN",
                                       price=101.0))
    assert [(o.event.signal.side, o.event.signal.quantity) for o in cut] == [(Side.SELL, 10)]
    nxt = int(datetime(2025, 1, 7, 9, 15, tzinfo=IST).timestamp()) * NS
    for i, symbol in enumerate(("INFY", "SBIN", "INFY")):  # and the next ones
        ts = nxt + i * NS
        assert risk_only(Topics.TICKS, Tick(event_id=f"n{i}", exchange_ts=ts, symbol=symbol,
                                            price=100.0)) == []
    # The square-off reaches the engine and fills: flat, with one square-off order.
    f.send(Topics.SIGNALS_VALIDATED, cut[0].event)
    f.tick("SBIN", 100.0, CUT + 2 * NS)
    assert f.net("a", "SBIN") == 0
    squares = [o for o in f.of(Topics.ORDERS_SUBMITTED, Order) if is_square_off(o.signal_id)]
    assert len(squares) == 1


def test_a_position_carried_over_a_weekend_is_squared_off_once() -> None:
    """Friday's feed stops before the cut-off: the first Saturday tick squares the position
    off, and Sunday's and Monday's first ticks (the fill still not back) add nothing."""
    f = Flow()
    friday = int(datetime(2025, 1, 10, 15, 10, tzinfo=IST).timestamp()) * NS
    f.tick("SBIN", 100.0, friday)
    f.signal("a", "SBIN", Side.BUY, 10, friday + NS)
    f.tick("SBIN", 100.0, friday + 2 * NS)
    assert f.net("a", "SBIN") == 10
    decisions = []
    for d in (1, 2, 3):  # Saturday, Sunday, Monday
        decisions += list(f.risk.process(Topics.TICKS, Tick(  # type: ignore[arg-type]
            event_id=f"d{d}", exchange_ts=friday + d * 86_400 * NS, symbol="INFY",
            price=100.0)))
    assert [o.event.signal.event_id for o in decisions] == [
        square_off_id(SquareOffReason.MIS_CARRIED, ist_day(friday) + 1, "a", "SBIN")]


def test_flatten_is_idempotent_and_a_second_one_once_flat_does_nothing() -> None:
    f = Flow()
    f.tick("SBIN", 100.0, T0)
    f.signal("a", "SBIN", Side.BUY, 10, T0 + NS)
    f.tick("SBIN", 100.0, T0 + 2 * NS)
    kill = Control(event_id="k", exchange_ts=T0 + 3 * NS, command=Command.KILL_SWITCH,
                   target_kind="RiskProfile", target="p")
    f.send(Topics.CONTROL, kill)
    flatten = Control(event_id="f1", exchange_ts=T0 + 3 * NS, command=Command.FLATTEN,
                      target_kind="RiskProfile", target="p")
    f.send(Topics.CONTROL, flatten)
    f.send(Topics.CONTROL, flatten)  # redelivered
    f.tick("SBIN", 100.0, T0 + 4 * NS)
    squares = [o for o in f.of(Topics.ORDERS_SUBMITTED, Order) if is_square_off(o.signal_id)]
    assert [(o.side, o.quantity) for o in squares] == [(Side.SELL, 10)]
    assert f.net("a", "SBIN") == 0
    before = len(f.log)
    f.send(Topics.CONTROL, Control(event_id="f2", exchange_ts=T0 + 5 * NS,
                                   command=Command.FLATTEN, target_kind="*", target="*"))
    assert f.log[before:] == []


class RunnerSource(Source):
    def strategy(self, name: str) -> StrategyRecord:
        return self.config.strategies[name]


def test_the_runner_book_follows_square_offs_and_cancellations() -> None:
    from alphaspt.workers.strategy_runner import StrategyRunner

    settings = Settings(clock="event")
    runner = StrategyRunner(settings, stage_config(settings, "strategy-a"),
                            RunnerSource(), "a")  # type: ignore[arg-type]
    runner.strategy.set_target("SBIN", 10)
    runner.strategy.set_target("INFY", 5)
    sq = square_off_id(SquareOffReason.FLATTEN, "f1", "a", "SBIN")
    runner.process(Topics.ORDERS_SUBMITTED, Order(
        event_id="AP1", exchange_ts=T0, client_order_id="AP1", signal_id=sq, strategy="a",
        symbol="SBIN", side=Side.SELL, quantity=10, order_type=OrderType.MARKET))
    runner.process(Topics.ORDERS_REJECTED, OrderRejected(
        event_id="c1", exchange_ts=T0, client_order_id="AP2", signal_id="old", strategy="a",
        symbol="INFY", reason="cancelled: kill switch", side=Side.BUY, quantity=5))
    # A broker's refusal of a signal not in flight, and another strategy's: no change.
    runner.process(Topics.ORDERS_REJECTED, OrderRejected(
        event_id="r1", exchange_ts=T0, client_order_id="AP3", signal_id="x", strategy="a",
        symbol="INFY", reason="limit price off the tick"))
    runner.process(Topics.ORDERS_REJECTED, OrderRejected(
        event_id="c2", exchange_ts=T0, client_order_id="AP4", signal_id="y", strategy="b",
        symbol="INFY", reason="cancelled: kill switch", side=Side.SELL, quantity=3))
    assert runner.strategy.targets == {}
    assert sq not in runner.early, "a square-off is no outcome of a signal of the runner's"


def test_kill_switch_in_the_profile_spec_cancels_working_orders_on_config_changed() -> None:
    f = Flow()
    f.tick("SBIN", 100.0, T0)
    resting = f.signal("a", "SBIN", Side.BUY, 5, T0 + NS, limit=98.0)
    other = f.signal("b", "SBIN", Side.SELL, 4, T0 + NS, limit=103.0)
    f.tick("SBIN", 100.0, T0 + 2 * NS)
    assert f.of(Topics.ORDERS_REJECTED, OrderRejected) == []
    source = f.engine.source
    assert isinstance(source, Source)
    source.change_profile(kill_switch=True)
    changed = Control(event_id="cc", exchange_ts=T0 + 3 * NS, command=Command.CONFIG_CHANGED)
    f.send(Topics.CONTROL, changed)
    f.send(Topics.CONTROL, changed)  # again: nothing more
    cancelled = f.of(Topics.ORDERS_REJECTED, OrderRejected)
    assert sorted((c.signal_id, c.reason, c.quantity) for c in cancelled) == [
        (resting, "cancelled: kill switch", 5), (other, "cancelled: kill switch", 4)]
    assert f.risk.engine.state.pending == {}, "the cancelled quantities are released"
    f.tick("SBIN", 90.0, T0 + 4 * NS)
    assert f.of(Topics.ORDERS_FILLED, Fill) == [], "a cancelled order never fills"


def test_a_cutoff_moved_earlier_by_config_changed_applies_at_the_next_tick() -> None:
    f = Flow()
    f.tick("SBIN", 100.0, T0)
    f.signal("a", "SBIN", Side.BUY, 10, T0 + NS)
    f.tick("SBIN", 100.0, T0 + 2 * NS)
    assert f.net("a", "SBIN") == 10
    f.tick("SBIN", 100.0, T0 + 3 * NS)  # before 15:20: the next cut-off is remembered
    source = f.risk.source
    assert isinstance(source, Source)
    source.change_profile(mis_cutoff=time(15, 10, 5))
    f.send(Topics.CONTROL, Control(event_id="cc", exchange_ts=T0 + 4 * NS,
                                   command=Command.CONFIG_CHANGED))
    f.tick("SBIN", 100.0, T0 + 6 * NS)  # 15:10:06, past the new cut-off
    squares = [o for o in f.of(Topics.ORDERS_SUBMITTED, Order) if is_square_off(o.signal_id)]
    assert [(o.side, o.quantity, o.exchange_ts) for o in squares] == [
        (Side.SELL, 10, cutoff_ns(DAY, time(15, 10, 5)))]
    f.tick("SBIN", 100.0, T0 + 7 * NS)
    assert f.net("a", "SBIN") == 0
    f.tick("SBIN", 100.0, CUT + NS)  # the old 15:20 cut-off: nothing more to do
    assert len([o for o in f.of(Topics.ORDERS_SUBMITTED, Order)
                if is_square_off(o.signal_id)]) == 1
