"""The risk manager stage on real Kafka and PostgreSQL: limits, kill switch, restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Codec,
    Command,
    Control,
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
from alphaspt.workers.common import ConfigSource, stage_config
from alphaspt.workers.risk_manager import RiskManager
from tests.integration.workers.profiles import ALL_DAY

pytestmark = pytest.mark.integration



def all_decisions(settings: Settings, strategy: str) -> list[RiskDecision]:
    """Every decision on the strategy's signals, a redelivered signal's each time."""
    codec = Codec(RiskDecision)
    return [d for topic in (Topics.SIGNALS_VALIDATED, Topics.SIGNALS_REJECTED)
            for d in (codec.decode(m.value()) for m in read_to_end(settings.kafka, topic))
            if d.signal.strategy == strategy]


def decisions(settings: Settings, strategy: str) -> dict[str, RiskDecision]:
    return {d.signal.event_id: d for d in all_decisions(settings, strategy)}


def wait_for(settings: Settings, strategy: str, ids: set[str], timeout: float = 30
             ) -> dict[str, RiskDecision]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = decisions(settings, strategy)
        if ids <= set(got):
            return got
        time.sleep(0.5)
    raise AssertionError(f"no decision for {ids - set(decisions(settings, strategy))}")


def wait_for_price(stage: RiskManager, symbol: str) -> None:
    """Ticks and signals are different topics: let the price arrive first, as it does in a
    live market where ticks flow continuously."""
    deadline = time.monotonic() + 30
    while symbol not in stage.engine.state.last_prices:
        assert time.monotonic() < deadline, "the tick never reached the risk manager"
        time.sleep(0.05)


def signal(strategy: str, sid: str, qty: int, side: Side = Side.BUY, price: float = 100.0
           ) -> Signal:
    return Signal(event_id=f"{strategy}-{sid}", exchange_ts=now_ns(), strategy=strategy,
                  symbol=symbol_of(strategy), side=side, quantity=qty, ref_price=price)


def symbol_of(strategy: str) -> str:
    """A symbol of the test's own: market.ticks is shared with the other tests."""
    return strategy.split("-", 1)[1].upper()


def test_limits_and_the_kill_switch_apply_to_the_next_signal(
    settings: Settings, configure: Callable[..., None],
    run_stage: Callable[[StreamProcessor], threading.Thread],
) -> None:
    name = f"s-{settings.namespace}"
    configure(
        {name: TradingStrategySpec(strategy="momentum", instruments=(symbol_of(name),),
                                   risk_profile_ref="tight")},
        {"tight": RiskProfileSpec.model_validate({
            "maxOrderQuantity": 50, "maxPositionPerInstrument": 80,
            **ALL_DAY})},
    )
    producer = EventProducer(settings.kafka)
    producer.send(Topics.TICKS, symbol_of(name), Tick(
        event_id=f"t-{name}", exchange_ts=now_ns(), symbol=symbol_of(name), price=100.0))
    producer.flush()
    stage = RiskManager(settings, stage_config(settings, "risk-manager"),
                        ConfigSource(settings.postgres.url.get_secret_value(),  # type: ignore[union-attr]
                                     settings.namespace))
    run_stage(stage)
    wait_for_price(stage, symbol_of(name))

    for s in (signal(name, "ok", 40), signal(name, "oversize", 60),
              signal(name, "position", 50)):
        producer.send(Topics.SIGNALS_GENERATED, name, s)
    producer.flush()
    got = wait_for(settings, name, {f"{name}-ok", f"{name}-oversize", f"{name}-position"})
    assert got[f"{name}-ok"].approved
    assert got[f"{name}-oversize"].reason is RiskReason.MAX_ORDER_QUANTITY
    assert "60" in got[f"{name}-oversize"].message and "50" in got[f"{name}-oversize"].message
    assert got[f"{name}-position"].reason is RiskReason.MAX_POSITION, "40 pending + 50 > 80"

    started = time.monotonic()
    producer.send(Topics.CONTROL, "tight", Control(
        event_id=f"kill-{name}", exchange_ts=now_ns(), command=Command.KILL_SWITCH,
        target_kind="RiskProfile", target="tight", value=True))
    producer.flush()
    deadline = time.monotonic() + 10
    while "tight" not in stage.engine.state.kill_switch_profiles:
        assert time.monotonic() < deadline, "kill switch not applied"
        time.sleep(0.05)
    applied_after = time.monotonic() - started
    producer.send(Topics.SIGNALS_GENERATED, name, signal(name, "after-kill", 1))
    producer.flush()
    got = wait_for(settings, name, {f"{name}-after-kill"})
    assert got[f"{name}-after-kill"].reason is RiskReason.KILL_SWITCH
    assert applied_after < 1.0, f"kill switch took {applied_after:.2f}s"


def test_state_survives_a_restart_and_a_redelivered_signal_keeps_its_decision(
    settings: Settings, configure: Callable[..., None],
    run_stage: Callable[[StreamProcessor], threading.Thread],
) -> None:
    name = f"r-{settings.namespace}"
    configure(
        {name: TradingStrategySpec(strategy="momentum", instruments=(symbol_of(name),),
                                   risk_profile_ref="pos")},
        {"pos": RiskProfileSpec.model_validate({"maxPositionPerInstrument": 100,
                                                **ALL_DAY})},
    )
    producer = EventProducer(settings.kafka)
    producer.send(Topics.TICKS, symbol_of(name), Tick(
        event_id=f"t-{name}", exchange_ts=now_ns(), symbol=symbol_of(name), price=100.0))
    producer.flush()
    source = ConfigSource(settings.postgres.url.get_secret_value(),  # type: ignore[union-attr]
                          settings.namespace)
    first = RiskManager(settings, stage_config(settings, "risk-manager"), source)
    thread = run_stage(first)
    wait_for_price(first, symbol_of(name))
    a = signal(name, "a", 70)
    producer.send(Topics.SIGNALS_GENERATED, name, a)
    producer.flush()
    assert wait_for(settings, name, {a.event_id})[a.event_id].approved
    first.stop()  # its last checkpoint writes the state to the changelog
    thread.join(30)
    assert not thread.is_alive()

    # A new process: the 70 pending shares and the decision on "a" come back from the
    # stage's changelog, so 70 + 40 is over the limit. Then "a" is delivered again (as
    # after a crash upstream): it gets the same decision and adds nothing pending, so
    # 70 + 30 is within the limit.
    second = RiskManager(settings, stage_config(settings, "risk-manager"), source)
    run_stage(second)
    for s in (signal(name, "b", 40), a, signal(name, "c", 30)):
        producer.send(Topics.SIGNALS_GENERATED, name, s)
    producer.flush()
    got = wait_for(settings, name, {f"{name}-b", f"{name}-c"})
    assert got[f"{name}-b"].reason is RiskReason.MAX_POSITION
    assert got[f"{name}-c"].approved, got[f"{name}-c"].message
    again = [d for d in all_decisions(settings, name) if d.event_id == a.event_id]
    assert len(again) == 2 and all(d.approved for d in again), again
