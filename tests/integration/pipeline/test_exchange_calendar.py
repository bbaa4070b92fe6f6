"""The exchange's calendar and rules end to end: ``alphaspt up --feed replay`` across a
Friday afternoon, a Saturday, Monday 26 January 2026 (Republic Day, an NSE holiday) and a
normal Tuesday, with NSE's session as the trading window and the shipped instruments file.

What a user can see (the topics) must show: no order on the closed days or outside the
session, no risk-increasing order at or after the MIS cutoff (15:20 IST), every fill on its
instrument's tick, and the closed days' signals refused with MARKET_CLOSED.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from alphaspt.brokers.paper import EXPIRED
from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import (
    CANCELLED_PREFIX,
    Codec,
    Order,
    OrderRejected,
    OrderType,
    RiskReason,
    Tick,
    Topics,
)
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.market import load_instruments
from alphaspt.market.calendar import ist_datetime
from alphaspt.risk.squareoff import is_square_off
from tests.chaos.harness import IST, PROFILE, write_manifests, write_replay
from tests.support.topics import strategy_events

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
INSTRUMENTS = REPO / "examples" / "instruments.csv"
FRI, SAT, HOLIDAY, TUE = date(2026, 1, 23), date(2026, 1, 24), date(2026, 1, 26), date(2026, 1, 27)
SEGMENTS = [  # (start IST, ticks at 500 ms): Friday 14:55-15:30, the closed days, Tuesday
    (datetime(2026, 1, 23, 14, 55, tzinfo=IST), 4200),
    (datetime(2026, 1, 24, 10, 0, tzinfo=IST), 600),
    (datetime(2026, 1, 26, 10, 0, tzinfo=IST), 600),
    (datetime(2026, 1, 27, 9, 15, tzinfo=IST), 3600),
]
CUTOFF = dtime(15, 20)


def _manifests(directory: Path, suffix: str) -> list[str]:
    profile: dict[str, Any] = {**PROFILE, "tradingWindow": {"start": "09:15", "end": "15:30"},
                               "misCutoff": "15:20"}
    write_manifests(directory, profile)
    path = directory / "chaos.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    names = []
    for doc in docs:
        if doc["kind"] == "TradingStrategy":
            doc["metadata"]["name"] = f"{doc['metadata']['name']}-{suffix}"
            names.append(doc["metadata"]["name"])
    path.write_text(yaml.safe_dump_all(docs))
    shutil.copy(INSTRUMENTS, directory / "instruments.csv")  # up uses it from there
    return names


def test_calendar_cutoff_and_ticks_through_up(
    tmp_path: Path, run_up: Callable[..., Any], kafka_bootstrap: str,
) -> None:
    names = _manifests(tmp_path / "manifests", os.urandom(3).hex())
    replay = tmp_path / "days.csv"
    for i, (start, ticks) in enumerate(SEGMENTS):
        write_replay(replay, ticks, seed=11 + i, spacing_ms=500.0, start=start, append=i > 0)
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap)

    up = run_up(tmp_path / "manifests", "--feed", "replay", "--replay", str(replay))
    try:
        deadline = time.monotonic() + 300
        seen, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:  # until the decisions stop coming for 15 s
            assert up.proc.poll() is None, up.output()[-3000:]
            n = sum(1 for _ in read_to_end(kafka, Topics.SIGNALS_VALIDATED)) + sum(
                1 for _ in read_to_end(kafka, Topics.SIGNALS_REJECTED))
            if n != seen or "finished" not in _feed_log(tmp_path):
                seen, stable_since = n, time.monotonic()
            elif time.monotonic() - stable_since > 20:
                break
            time.sleep(3)
        else:
            pytest.fail("the replay did not drain in 300 s")
    finally:
        assert up.stop() == 0, up.output()[-3000:]

    approved = [d for d in strategy_events(kafka, Topics.SIGNALS_VALIDATED, names)
                if d.approved]
    refused = strategy_events(kafka, Topics.SIGNALS_REJECTED, names)
    orders = strategy_events(kafka, Topics.ORDERS_SUBMITTED, names)
    fills = strategy_events(kafka, Topics.ORDERS_FILLED, names)
    broker_refused = strategy_events(kafka, Topics.ORDERS_REJECTED, names)

    days = defaultdict(int)
    for o in orders:
        local = ist_datetime(o.exchange_ts)
        days[local.date()] += 1
        # 1. no order on a closed day or outside the session
        assert local.date() in (FRI, TUE), (o.client_order_id, local)
        assert dtime(9, 15) <= local.time() < dtime(15, 30), (o.client_order_id, local)
    assert days[FRI] > 0 and days[TUE] > 0, dict(days)
    closed = [d for d in refused if ist_datetime(d.signal.exchange_ts).date() in (SAT, HOLIDAY)]
    assert closed and all(d.reason is RiskReason.MARKET_CLOSED for d in closed)
    assert {ist_datetime(d.signal.exchange_ts).date() for d in closed} == {SAT, HOLIDAY}

    # 2. no risk-increasing order at or after 15:20: each one moves the strategy's
    # position + pending (all approvals so far; the broker refused none) towards flat.
    # The broker refused nothing but square-offs with nothing left to close,
    # cancellations of working orders by a square-off, and day orders that expired
    # because no tick of their instrument followed them on their day.
    expired = [r for r in broker_refused if r.reason == f"{CANCELLED_PREFIX}{EXPIRED}"]
    assert all(r.reason.startswith(("square-off", "cancelled: square-off"))
               for r in broker_refused if r not in expired), [r.reason for r in broker_refused]
    _assert_unfillable_on_their_day(kafka, expired, {o.client_order_id: o for o in orders})
    # In the risk manager's decision order (a strategy's decisions share a partition), not
    # by timestamp: a signal stamped at the cut-off tick's instant can be decided before
    # that tick reaches the risk manager, as a reduction of the open position, and the
    # cut-off's square-off (stamped at the same instant) then closes what is left.
    net: dict[tuple[str, str], int] = defaultdict(int)
    after_cutoff = 0
    for d in approved:
        s = d.signal
        key = (s.strategy, s.symbol)
        if is_square_off(d.event_id):
            net[key] = 0  # the trading engine closes exactly what is open at the cut-off
            continue
        signed = s.side.sign * s.quantity
        if ist_datetime(s.exchange_ts).time() >= CUTOFF:
            after_cutoff += 1
            current = net[key]
            assert current != 0 and (current > 0) != (signed > 0) \
                and abs(signed) <= abs(current), (s.event_id, current, signed)
        net[key] += signed
    cut = [d for d in refused if d.reason is RiskReason.PRODUCT_CUTOFF]
    assert cut, "the strategies kept trading into the cutoff, so it must have refused some"
    assert all(ist_datetime(d.signal.exchange_ts).time() >= CUTOFF for d in cut)

    # 3. every fill on its instrument's tick
    instruments = load_instruments(INSTRUMENTS)
    assert fills
    for f in fills:
        inst = instruments.get(f.symbol)
        assert inst is not None
        assert Decimal(repr(f.price)) % inst.tick_size == 0, (f.trade_id, f.price)

    # 4. every MIS position flat at Friday's end (squared off at 15:20), none carried over
    # the weekend and the holiday into Tuesday (the replay ends on Tuesday morning).
    placed = {o.client_order_id: o for o in orders}
    friday: dict[tuple[str, str], int] = defaultdict(int)
    for f in {f.trade_id: f for f in fills}.values():
        if ist_datetime(placed[f.client_order_id].exchange_ts).date() == FRI:
            friday[(f.strategy, f.symbol)] += f.side.sign * f.quantity
    assert friday and all(q == 0 for q in friday.values()), dict(friday)
    squared = [o for o in orders if is_square_off(o.signal_id)]
    assert squared and all(ist_datetime(o.exchange_ts).date() == FRI for o in squared)
    print(f"orders {dict(days)}, after cutoff {after_cutoff}, refused at cutoff {len(cut)}, "
          f"closed-day refusals {len(closed)}, fills {len(fills)}, expired {len(expired)}")


def _assert_unfillable_on_their_day(kafka: KafkaConfig, expired: list[OrderRejected],
                                    placed: dict[str, Order]) -> None:
    """An expired paper day order had no tick of its instrument after it on its IST day
    (a market order fills on the first one)."""
    if not expired:
        return
    last: dict[tuple[str, date], int] = {}
    codec = Codec(Tick)
    for m in read_to_end(kafka, Topics.TICKS):
        tick = codec.decode(m.value())
        key = (tick.symbol, ist_datetime(tick.exchange_ts).date())
        last[key] = max(last.get(key, 0), tick.exchange_ts)
    for r in expired:
        order = placed[r.client_order_id]
        assert order.order_type is OrderType.MARKET, order
        day_end = last[(order.symbol, ist_datetime(order.exchange_ts).date())]
        assert day_end <= order.exchange_ts, (
            f"{order.client_order_id} ({order.symbol} {order.side} x{order.quantity} at "
            f"{ist_datetime(order.exchange_ts)}) expired, but its day had a tick after it "
            f"at {ist_datetime(day_end)}")


def _feed_log(tmp_path: Path) -> str:
    log = tmp_path / "state" / "logs" / "market-feed.log"
    return log.read_text() if log.exists() else ""
