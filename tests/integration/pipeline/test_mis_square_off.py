"""MIS square-off end to end through ``alphaspt up --feed replay`` on real servers.

The replay (the demo ticks moved to 15:18:20 IST on Monday 6 January 2025, then a few
ticks of Tuesday's opening) crosses 15:20 IST. ``mom`` is bound to a profile with the
default cut-off (15:20): its MIS positions are squared off then. ``mr`` is bound to a
profile whose cut-off (15:59) no tick reaches: its positions still open at the IST day
roll-over are squared off at Tuesday's first event. The risk manager is SIGKILLed as soon
as the first square-off decision is on the topic. From the topics and Redis only: no
signal became two orders, Monday's MIS positions net to zero with the square-offs, no
order of ``mom`` was placed for a signal at or after the cut-off but square-offs, and
Redis equals the net of the fills.
"""

from __future__ import annotations

import csv
import os
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import psutil
import pytest
import redis
import yaml

from alphaspt.core.clock import ist_day
from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Fill, Order, RiskDecision, Topics
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.risk.squareoff import cutoff_ns, is_square_off

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
IST = ZoneInfo("Asia/Kolkata")
MONDAY = datetime(2025, 1, 6, 15, 18, 20, tzinfo=IST)
TUESDAY = datetime(2025, 1, 7, 9, 15, tzinfo=IST)
PROFILE: dict[str, Any] = {
    "maxOrderQuantity": 100, "maxOrderValue": 1_000_000, "priceBandPercent": 5,
    "maxPositionPerInstrument": 40, "maxGrossExposure": 50_000_000, "maxDailyLoss": 1_000_000,
    "maxOrdersPerSecond": 10, "maxOrdersPerMinute": 600,
    "tradingWindow": {"start": "00:00", "end": "23:59:59"},
}


def write_replay(path: Path) -> None:
    """The demo ticks from MONDAY on, then Tuesday's first 12 ticks."""
    with (REPO / "examples" / "ticks" / "demo.csv").open() as f:
        rows = list(csv.DictReader(f))
    first = datetime.fromisoformat(rows[0]["timestamp"])
    with path.open("w") as out:
        out.write("timestamp,symbol,price,quantity\n")
        for start, part in ((MONDAY, rows), (TUESDAY, rows[:12])):
            for row in part:
                ts = start + (datetime.fromisoformat(row["timestamp"]) - first)
                out.write(f"{ts.isoformat(timespec='milliseconds')},{row['symbol']},"
                          f"{row['price']},{row['quantity']}\n")


def write_manifests(directory: Path, mom: str, mr: str) -> None:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "alphaspt.io/v1alpha1", "kind": "RiskProfile",
         "metadata": {"name": "cutoff"}, "spec": PROFILE},
        {"apiVersion": "alphaspt.io/v1alpha1", "kind": "RiskProfile",
         "metadata": {"name": "late"}, "spec": {**PROFILE, "misCutoff": "15:59"}},
        {"apiVersion": "alphaspt.io/v1alpha1", "kind": "TradingStrategy",
         "metadata": {"name": mom}, "spec": {
             "strategy": "momentum", "params": {"quantity": 10, "allowShort": True},
             "instruments": ["RELIANCE", "INFY", "SBIN"], "riskProfileRef": "cutoff"}},
        {"apiVersion": "alphaspt.io/v1alpha1", "kind": "TradingStrategy",
         "metadata": {"name": mr}, "spec": {
             "strategy": "mean_reversion", "params": {"quantity": 15, "allowShort": True},
             "instruments": ["RELIANCE", "INFY", "SBIN"], "riskProfileRef": "late"}},
    ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pipeline.yaml").write_text(yaml.safe_dump_all(docs))


def risk_manager(up: Any) -> psutil.Process | None:
    for child in psutil.Process(up.proc.pid).children():
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if "worker" in cmd and "risk-manager" in cmd:
            return child
    return None


def decisions(kafka: KafkaConfig, names: set[str]) -> list[RiskDecision]:
    codec = Codec(RiskDecision)
    out = []
    for topic in (Topics.SIGNALS_VALIDATED, Topics.SIGNALS_REJECTED):
        for m in read_to_end(kafka, topic):
            d = codec.decode(m.value())
            if d.signal.strategy in names:
                out.append(d)
    return out


def test_a_replay_across_the_cutoff_leaves_no_mis_position_and_no_order_twice(
    tmp_path: Path, run_up: Callable[..., Any], redis_url: str, kafka_bootstrap: str,
) -> None:
    ns = os.urandom(3).hex()
    mom, mr = f"mom-{ns}", f"mr-{ns}"
    names = {mom, mr}
    replay = tmp_path / "cutoff.csv"
    write_replay(replay)
    write_manifests(tmp_path / "manifests", mom, mr)
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    up = run_up(tmp_path / "manifests", "--feed", "replay", "--replay", str(replay))
    killed = False
    try:
        deadline = time.monotonic() + 100
        stable, last = 0, -1
        while time.monotonic() < deadline:
            assert up.proc.poll() is None, f"alphaspt up exited:\n{up.output()[-3000:]}"
            if not killed and any(is_square_off(d.event_id) for d in decisions(kafka, names)):
                victim = risk_manager(up)
                assert victim is not None
                victim.kill()  # SIGKILL during the square-off: up restarts it
                killed = True
            fills = sum(int(client.hget(f"portfolio:{n}", "fills") or 0) for n in names)
            stable = stable + 1 if fills == last and killed else 0
            last = fills
            if stable >= 8:
                break
            time.sleep(1.5)
        time.sleep(2)
        actual = {n: client.hgetall(f"portfolio:{n}") for n in names}
    finally:
        code = up.stop()
    assert code == 0, up.output()[-3000:]
    assert killed, "no square-off decision was ever published"

    monday = ist_day(int(MONDAY.timestamp() * 1e9))
    cutoff = cutoff_ns(monday, datetime.strptime("15:20", "%H:%M").time())
    by_signal: dict[str, set[str]] = defaultdict(set)
    orders: dict[str, set[Order]] = defaultdict(set)
    for m in read_to_end(kafka, Topics.ORDERS_SUBMITTED):
        o = Codec(Order).decode(m.value())
        if o.strategy in names:
            by_signal[o.signal_id].add(o.client_order_id)
            orders[o.client_order_id].add(msgspec.structs.replace(o, ingest_ts=0))
    # 1. No signal (square-offs included) became two orders, no order has two contents.
    assert all(len(c) == 1 for c in by_signal.values()), by_signal
    assert all(len(v) == 1 for v in orders.values())
    placed = {coid: next(iter(v)) for coid, v in orders.items()}
    reasons = {d.event_id: d.signal.reason for d in decisions(kafka, names) if d.approved}
    squares = [o for o in placed.values() if is_square_off(o.signal_id)]
    assert any(reasons[o.signal_id] == "square-off:MIS_CUTOFF" and o.strategy == mom
               for o in squares), "mom's positions squared off at 15:20"
    late_cutoff = cutoff_ns(monday, datetime.strptime("15:59", "%H:%M").time())
    assert all(o.exchange_ts == (cutoff if o.strategy == mom else late_cutoff)
               for o in squares if reasons[o.signal_id] == "square-off:MIS_CUTOFF")
    # 2. After the cut-off nothing but square-offs was placed for mom on Monday.
    late = [o for o in placed.values() if o.strategy == mom and not is_square_off(o.signal_id)
            and ist_day(o.exchange_ts) == monday and o.exchange_ts >= cutoff]
    assert late == []

    fills: dict[str, Fill] = {}
    for m in read_to_end(kafka, Topics.ORDERS_FILLED):
        f = Codec(Fill).decode(m.value())
        if f.strategy in names:
            fills.setdefault(f.trade_id, f)
    # 3. Monday's MIS positions (orders of Monday, and the square-offs of what was carried
    # into Tuesday) net to zero: no MIS position was carried.
    net: dict[tuple[str, str], int] = defaultdict(int)
    for f in fills.values():
        order = placed[f.client_order_id]
        carried = reasons.get(order.signal_id) == "square-off:MIS_CARRIED"
        if ist_day(order.exchange_ts) == monday or carried:
            net[(f.strategy, f.symbol)] += f.side.sign * f.quantity
    assert net and all(q == 0 for q in net.values()), dict(net)
    assert {s for (s, _), _q in net.items()} == names, "both strategies traded on Monday"
    # 4. Redis equals the net of every distinct fill.
    total: dict[tuple[str, str], int] = defaultdict(int)
    for f in fills.values():
        total[(f.strategy, f.symbol)] += f.side.sign * f.quantity
    for (strategy, symbol), qty in total.items():
        assert int(actual[strategy].get(f"position:{symbol}", "0")) == qty, (strategy, symbol)
    assert sum(int(actual[n]["fills"]) for n in names) == len(fills)
