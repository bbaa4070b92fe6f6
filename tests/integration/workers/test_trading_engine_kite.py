"""The trading engine with a Live strategy: Kite (the simulator, through the real
kiteconnect client) on real Kafka and PostgreSQL, in-process and as a SIGKILLed process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Codec,
    Fill,
    Order,
    OrderRejected,
    Product,
    RiskDecision,
    RiskReason,
    Side,
    Signal,
    Topics,
    now_ns,
)
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming import EventProducer, StreamProcessor
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.kite_sim import Limits
from alphaspt.workers.common import ConfigSource, stage_config
from alphaspt.workers.registry import kite_broker
from alphaspt.workers.trading_engine import TradingEngine
from tests.integration.kite.conftest import KiteSim, kite_sim  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def live_spec(symbol: str, product: str = "MIS") -> TradingStrategySpec:
    return TradingStrategySpec.model_validate({
        "strategy": "momentum", "instruments": [symbol], "mode": "Live", "product": product,
        "riskProfileRef": "rp", "brokerSecretRef": {"name": "kite-account"}})


def approved(strategy: str, symbol: str, sid: str, qty: int = 10,
             product: Product = Product.MIS) -> RiskDecision:
    sig = Signal(event_id=f"{strategy}-{sid}", exchange_ts=now_ns(), strategy=strategy,
                 symbol=symbol, side=Side.BUY, quantity=qty, ref_price=100.0,
                 product=product)
    return RiskDecision(event_id=sig.event_id, exchange_ts=sig.exchange_ts, signal=sig,
                        approved=True, reason=RiskReason.OK, message="", risk_profile="rp")


def of_strategy(settings: Settings, topic: str, codec: Codec, strategy: str) -> list:  # type: ignore[type-arg]
    return [e for e in (codec.decode(m.value()) for m in read_to_end(settings.kafka, topic))
            if e.strategy == strategy]


def wait(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def live_engine(settings: Settings, sim: KiteSim) -> TradingEngine:
    """The trading engine as the registry wires it, with the simulator's Kite settings."""
    live = settings.model_copy(update={"kite": sim.config})
    assert live.postgres.url is not None
    return TradingEngine(live, stage_config(live, "trading-engine"),
                         ConfigSource(live.postgres.url.get_secret_value(), live.namespace),
                         live_broker=kite_broker(live))


def test_live_orders_go_to_kite_with_the_strategys_product_and_fill(
    settings: Settings, configure: Callable[..., None], kite_sim: KiteSim,  # noqa: F811
    run_stage: Callable[[StreamProcessor], threading.Thread],
) -> None:
    kite_sim.login()
    strategy, symbol = f"live-{settings.namespace}", "KITEA" + settings.namespace[-3:].upper()
    configure({strategy: live_spec(symbol, "CNC")}, {"rp": RiskProfileSpec()})
    run_stage(live_engine(settings, kite_sim))
    producer = EventProducer(settings.kafka)
    for i in range(3):
        d = approved(strategy, symbol, f"s{i}", product=Product.CNC)
        producer.send(Topics.SIGNALS_VALIDATED, strategy, d)
    producer.flush()
    wait(lambda: len(of_strategy(settings, Topics.ORDERS_FILLED, Codec(Fill), strategy)) >= 3,
         60, "three fills from Kite's trades")
    orders = of_strategy(settings, Topics.ORDERS_SUBMITTED, Codec(Order), strategy)
    fills = of_strategy(settings, Topics.ORDERS_FILLED, Codec(Fill), strategy)
    book = [o for o in kite_sim.book.order_list() if o["tradingsymbol"] == symbol]
    assert sorted(str(o["tag"]) for o in book) == sorted(o.client_order_id for o in orders)
    assert {o["product"] for o in book} == {"CNC"} and {o.mode for o in orders} == {"Live"}
    assert {f.trade_id for f in fills} == {t["trade_id"] for t in kite_sim.book.trade_list()}


def test_token_expiry_rejects_live_orders_saying_to_log_in_again(
    settings: Settings, configure: Callable[..., None], kite_sim: KiteSim,  # noqa: F811
    run_stage: Callable[[StreamProcessor], threading.Thread],
) -> None:
    kite_sim.login()
    strategy, symbol = f"tok-{settings.namespace}", "KITEB" + settings.namespace[-3:].upper()
    configure({strategy: live_spec(symbol)}, {"rp": RiskProfileSpec()})
    engine = live_engine(settings, kite_sim)
    run_stage(engine)
    kite_sim.book.expire_sessions()
    producer = EventProducer(settings.kafka)
    producer.send(Topics.SIGNALS_VALIDATED, strategy, approved(strategy, symbol, "x"))
    producer.flush()
    codec = Codec(OrderRejected)
    wait(lambda: of_strategy(settings, Topics.ORDERS_REJECTED, codec, strategy), 60,
         "a rejection")
    (rej,) = of_strategy(settings, Topics.ORDERS_REJECTED, codec, strategy)
    assert "log in again" in rej.reason
    wait(lambda: "log in again" in (engine.health.reason or ""), 30,
         "the halt is the engine's health reason (up's console, /status)")
    assert kite_sim.book.order_list() == []


def test_sigkill_after_kite_accepted_the_order_never_places_it_twice(
    settings: Settings, configure: Callable[..., None], kite_sim: KiteSim,  # noqa: F811
    tmp_path: Path,
) -> None:
    kite_sim.login()
    strategy, symbol = f"kill-{settings.namespace}", "KITEC" + settings.namespace[-3:].upper()
    configure({strategy: live_spec(symbol)}, {"rp": RiskProfileSpec()})
    assert settings.postgres.url is not None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")},
        "PYTHONPATH": str(REPO),
        "ALPHASPT_SETTINGS_FILE": "/nonexistent.toml",
        "ALPHASPT_NAMESPACE": settings.namespace,
        "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "ALPHASPT_POSTGRES__URL": settings.postgres.url.get_secret_value(),
        "ALPHASPT_KITE__API_ROOT": kite_sim.server.api_root,
        "ALPHASPT_KITE__TICKER_ROOT": kite_sim.server.ticker_root,
        "ALPHASPT_KITE__API_KEY": str(kite_sim.config.api_key),
        "ALPHASPT_KITE__TOKEN_FILE": str(kite_sim.token_file),
        "ALPHASPT_KITE__TIMEOUT_S": "120",
        "ALPHASPT_KITE__POLL_INTERVAL_S": "0.2",
    }

    def engine(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "alphaspt", "worker", "trading-engine"], env=env,
            cwd=REPO, stdout=(tmp_path / f"{name}.log").open("w"), stderr=subprocess.STDOUT,
            text=True)

    # Kite takes the order but holds its answer: the engine is killed while it waits.
    kite_sim.faults.accept_then_timeout(delay_s=300)
    first = engine("first")
    try:
        producer = EventProducer(settings.kafka)
        d = approved(strategy, symbol, "once")
        producer.send(Topics.SIGNALS_VALIDATED, strategy, d)
        producer.flush()
        tag_of = [o for o in kite_sim.book.order_list() if o["tradingsymbol"] == symbol]
        wait(lambda: [o for o in kite_sim.book.order_list() if o["tradingsymbol"] == symbol],
             90, "the order reached Kite")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert of_strategy(settings, Topics.ORDERS_SUBMITTED, Codec(Order), strategy) == []

    second = engine("second")
    try:
        wait(lambda: of_strategy(settings, Topics.ORDERS_FILLED, Codec(Fill), strategy), 90,
             "the recovered order's fill")
        submitted = of_strategy(settings, Topics.ORDERS_SUBMITTED, Codec(Order), strategy)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    tag_of = [o for o in kite_sim.book.order_list() if o["tradingsymbol"] == symbol]
    assert len(tag_of) == 1, "reconciliation by tag found the order: no second one"
    assert [o.client_order_id for o in submitted] == [tag_of[0]["tag"]]
    assert "placed before a restart" in (tmp_path / "second.log").read_text()


def test_a_burst_of_100_signals_across_two_strategies_stays_within_10_orders_a_second(
    settings: Settings, configure: Callable[..., None], kite_sim: KiteSim,  # noqa: F811
    run_stage: Callable[[StreamProcessor], threading.Thread],
) -> None:
    kite_sim.login()
    suffix = settings.namespace[-3:].upper()
    names = {f"b{k}-{settings.namespace}": f"BURST{k}{suffix}" for k in (1, 2)}
    configure({n: live_spec(sym) for n, sym in names.items()}, {"rp": RiskProfileSpec()})
    kite_sim.book.set_limits(Limits(orders_per_second=8))  # Kite stricter than we are: 429s
    run_stage(live_engine(settings, kite_sim))
    producer = EventProducer(settings.kafka)
    for i in range(50):
        for name, sym in names.items():
            producer.send(Topics.SIGNALS_VALIDATED, name, approved(name, sym, f"n{i}", qty=1))
    producer.flush()

    def submitted() -> int:
        return sum(len(of_strategy(settings, Topics.ORDERS_SUBMITTED, Codec(Order), n))
                   for n in names)
    wait(lambda: submitted() >= 100, 120, "100 orders submitted")
    times = sorted(kite_sim.book.placed_at)
    assert len(times) == 100
    assert max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times)) <= 8
    assert kite_sim.book.throttled > 0, "Kite's 429s were met and waited out"
    tags = sorted(str(o["tag"]) for o in kite_sim.book.order_list())
    assert len(set(tags)) == 100
    rejected = [r for n in names
                for r in of_strategy(settings, Topics.ORDERS_REJECTED, Codec(OrderRejected), n)]
    assert rejected == []
