"""The chaos harness: the whole pipeline through ``alphaspt up``, with faults injected.

A run starts ``alphaspt up --feed replay`` on a deterministic replay (both example
strategies, a RiskProfile with the examples' limits, in its own state directory and on
its own ports), injects faults while the replay plays (SIGKILL of random stages, SIGSTOP
of a stage or of Redis, a broker kill), waits until every stage has consumed everything,
and then reads what a user can see: the topics and Redis.

``check`` computes the invariants from those alone; ``compare`` diffs two runs' orders and
fills. ``python -m tests.chaos`` runs the full-size suite and prints one figures line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import redis
import yaml
from confluent_kafka.admin import AdminClient

from alphaspt.brokers.base import client_order_id
from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Fill, Order, RiskDecision, Tick, Topics
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.local.process import free_port, port_open, tail
from alphaspt.portfolio.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
IST = timezone(timedelta(hours=5, minutes=30))
SYMBOLS = ("RELIANCE", "TCS", "INFY", "SBIN", "HDFCBANK")
STAGES = ("market-feed", "feature-engine", "risk-manager", "trading-engine",
          "portfolio-manager", "strategy-momentum-demo", "strategy-mean-reversion-demo")
PROFILE: dict[str, Any] = {
    "maxOrderQuantity": 100, "maxOrderValue": 1_000_000, "priceBandPercent": 5,
    "maxPositionPerInstrument": 60, "maxGrossExposure": 50_000_000, "maxDailyLoss": 1_000_000,
    "maxOrdersPerSecond": 10, "maxOrdersPerMinute": 600,
    "tradingWindow": {"start": "00:00", "end": "23:59:59"},
}


def write_replay(path: Path, ticks: int, seed: int = 7, spacing_ms: float = 20.0,
                 start: datetime | None = None, append: bool = False) -> None:
    """A seeded random walk of the example symbols on the ₹0.05 grid, ``spacing_ms``
    apart from ``start`` (09:15 IST on Tuesday 7 January 2025); ``append`` adds the rows
    to an existing file (another session of the same replay)."""
    rng = random.Random(seed)
    prices = {"RELIANCE": 1400.0, "TCS": 4100.0, "INFY": 1550.0, "SBIN": 800.0,
              "HDFCBANK": 1700.0}
    volume = dict.fromkeys(SYMBOLS, 0)
    start = start or datetime(2025, 1, 7, 9, 15, tzinfo=IST)
    with path.open("a" if append else "w") as out:
        if not append:
            out.write("timestamp,symbol,price,quantity,volume\n")
        for i in range(ticks):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            drift = rng.gauss(0, 0.0004) * prices[symbol]
            prices[symbol] = max(1.0, round(round((prices[symbol] + drift) / 0.05) * 0.05, 2))
            qty = rng.randint(1, 200)
            volume[symbol] += qty
            ts = start + timedelta(milliseconds=spacing_ms * i)
            out.write(f"{ts.isoformat(timespec='milliseconds')},{symbol},"
                      f"{prices[symbol]:.2f},{qty},{volume[symbol]}\n")


def write_manifests(directory: Path, profile: dict[str, Any] | None = None) -> None:
    """The two example strategies bound to a profile with room to trade."""
    docs: list[dict[str, Any]] = []
    for file in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "TradingStrategy":
                doc["spec"]["riskProfileRef"] = "chaos"
                docs.append(doc)
    docs.append({"apiVersion": "alphaspt.io/v1alpha1", "kind": "RiskProfile",
                 "metadata": {"name": "chaos"}, "spec": profile or PROFILE})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chaos.yaml").write_text(yaml.safe_dump_all(docs))


@dataclass
class Faults:
    kills: int = 0
    """SIGKILLs of random stages, spread over the replay."""
    favour: tuple[str, ...] = ("trading-engine", "portfolio-manager")
    """Stages killed more often (every stage is killed at least once when kills >= 7)."""
    stall_redis: float = 0.0
    """Seconds Redis is SIGSTOPped mid-run."""
    kill_broker: bool = False
    restart_postgres: bool = False
    pause_stage: tuple[str, str] | None = None
    """(stage paused for 25 s, stage killed meanwhile)."""


@dataclass
class RunResult:
    broker: str
    ticks: int
    kills: int = 0
    exit_code: int | None = None
    orders: dict[str, Order] = field(default_factory=dict)
    order_copies: Counter[str] = field(default_factory=Counter)
    fills: dict[str, Fill] = field(default_factory=dict)
    fill_variants: dict[str, set[tuple[float, int]]] = field(default_factory=dict)
    validated: dict[str, RiskDecision] = field(default_factory=dict)
    decisions: dict[str, set[bool]] = field(default_factory=dict)
    last_prices: dict[str, float] = field(default_factory=dict)
    redis: dict[str, dict[str, str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Up:
    """``alphaspt up`` in a subprocess with its own state dir, ports and logs."""

    def __init__(self, workdir: Path, broker: str, replay: Path, speed: float | None) -> None:
        self.workdir = workdir
        self.broker = broker
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")}
        self.env.update({
            "ALPHASPT_LOCAL__STATE_DIR": str(workdir / "state"),
            "ALPHASPT_LOCAL__KAFKA": broker,
            "ALPHASPT_API__PORT": str(free_port()),
            "ALPHASPT_SETTINGS_FILE": "/nonexistent/settings.toml",
            "PYTHONUNBUFFERED": "1",
        })
        self.argv = [sys.executable, "-m", "alphaspt", "up", "-f", str(workdir / "manifests"),
                     "--feed", "replay", "--replay", str(replay),
                     *(["--speed", str(speed)] if speed else [])]
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.urls: dict[str, str] = {}

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.workdir, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.read()
            if any(line.startswith("ready in") for line in self.lines):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("alphaspt up exited:\n" + "\n".join(self.lines))
            time.sleep(0.1)
        raise RuntimeError("alphaspt up not ready:\n" + "\n".join(self.lines))

    def read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with suppress(TypeError, OSError):
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                parts = line.split()
                if len(parts) >= 2 and parts[0] in ("postgres", "redis", "kafka") and (
                        "://" in parts[1] or ":" in parts[1]):
                    self.urls[parts[0]] = parts[1]

    def workers(self) -> dict[str, psutil.Process]:
        """Stage name → its live process (``alphaspt worker STAGE`` children of up)."""
        assert self.proc is not None
        out = {}
        for child in psutil.Process(self.proc.pid).children(recursive=False):
            with suppress(psutil.Error):
                cmd = child.cmdline()
                if "worker" in cmd:
                    i = cmd.index("worker")
                    stage = cmd[i + 1]
                    if "--strategy" in cmd:
                        stage = f"strategy-{cmd[cmd.index('--strategy') + 1]}"
                    out[stage] = child
        return out

    def server(self, name: str) -> psutil.Process | None:
        assert self.proc is not None
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            with suppress(psutil.Error):
                cmd = " ".join(child.cmdline())
                if name == "redis" and "redis-server" in cmd:
                    return child
                if name == "postgres" and child.name() == "postgres" and "-D" in cmd:
                    return child
                if name == "kafka" and ("kafka.Kafka" in cmd or "tansu" in cmd):
                    return child
        return None

    @property
    def kafka(self) -> KafkaConfig:
        return KafkaConfig(bootstrap_servers=self.urls["kafka"])

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.read()
        return self.proc.returncode


MAIN_INPUT = {
    "feature-engine": Topics.TICKS,
    "risk-manager": Topics.SIGNALS_GENERATED,
    "trading-engine": Topics.SIGNALS_VALIDATED,
    "portfolio-manager": Topics.ORDERS_FILLED,
    "strategy-momentum-demo": Topics.FEATURES,
    "strategy-mean-reversion-demo": Topics.FEATURES,
}
"""The topic each stage's group must have consumed to its end for the pipeline to be
drained, whether or not the group has committed anything yet."""
assert set(MAIN_INPUT) == set(STAGES) - {"market-feed"}, "every consuming stage, once"


def group_lag(kafka: KafkaConfig) -> dict[str, int]:
    """Stage → messages its consumer group has not committed yet.

    Every partition a group has committed counts, and so does every partition of its
    stage's main input that it has not committed at all: a stage killed before its first
    checkpoint, or still restoring, has nothing committed, and counting only committed
    partitions took such a pipeline for drained (a chaos run then "lost" every order the
    trading engine had not made yet). tansu's DescribeGroups lists no members, so the
    assignment cannot be asked for instead."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    admin = AdminClient(kafka.client_config())
    probe = Consumer({**kafka.client_config(), "group.id": "alphaspt-chaos-probe"})
    try:
        lag: dict[str, int] = {}
        for stage, main in MAIN_INPUT.items():
            group = f"alphaspt-default-{stage}"
            res = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)])[group].result(10)
            committed = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions
                         if not tp.topic.endswith((".changelog", ".state"))}
            meta = probe.list_topics(main, timeout=10).topics.get(main)
            parts = set(committed) | {(main, p) for p in (meta.partitions if meta else ())}
            for topic, partition in parts:
                _low, high = probe.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10)
                behind = max(0, high - max(committed.get((topic, partition), 0), 0))
                lag[stage] = lag.get(stage, 0) + behind
        return lag
    finally:
        probe.close()


def topic_end(kafka: KafkaConfig, topic: str) -> int:
    """Sum of the partitions' high watermarks (messages ever written, no compaction)."""
    from confluent_kafka import Consumer, TopicPartition
    probe = Consumer({**kafka.client_config(), "group.id": "alphaspt-chaos-probe"})
    try:
        meta = probe.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        return sum(probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in meta.partitions)
    finally:
        probe.close()


def wait_drained(up: Up, expect_ticks: int, timeout: float) -> None:
    """Until the replay is all in market.ticks and no group lags, for 3 s in a row."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    why = "not started"
    while time.monotonic() < deadline:
        up.read()
        host, _, port = up.urls["kafka"].rpartition(":")
        if not port_open(host, int(port)):  # the broker is restarting
            quiet_since = None
            time.sleep(1.0)
            continue
        try:
            # tansu can report a high watermark below the end: the feed's log says too.
            ticks = topic_end(up.kafka, Topics.TICKS)
            finished = ticks >= expect_ticks or "finished" in tail(
                up.workdir / "state" / "logs" / "market-feed.log", 3)
            lags = group_lag(up.kafka) if finished else {}
            lag = sum(lags.values()) if finished else -1
            behind = ", ".join(f"{s} {n}" for s, n in lags.items() if n) or "none"
            why = f"{ticks} of {expect_ticks} ticks in the topic, groups behind: {behind}"
        except Exception as exc:  # the broker may be restarting
            lag = -1
            why = f"cannot measure: {exc}"
        if lag == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 3:
                time.sleep(1.0)  # the portfolio manager's last Redis write
                return
        else:
            quiet_since = None
        time.sleep(1.0)
    raise TimeoutError(f"pipeline not drained after {timeout:g}s ({why}):\n"
                       + "\n".join(up.lines[-30:]))


def collect(up: Up, result: RunResult) -> None:
    kafka = up.kafka
    for msg in read_to_end(kafka, Topics.ORDERS_SUBMITTED):
        order = Codec(Order).decode(msg.value())
        result.orders[order.client_order_id] = order
        result.order_copies[order.client_order_id] += 1
    for msg in read_to_end(kafka, Topics.ORDERS_FILLED):
        fill = Codec(Fill).decode(msg.value())
        result.fills.setdefault(fill.trade_id, fill)
        result.fill_variants.setdefault(fill.trade_id, set()).add((fill.price, fill.quantity))
    for topic in (Topics.SIGNALS_VALIDATED, Topics.SIGNALS_REJECTED):
        for msg in read_to_end(kafka, topic):
            d = Codec(RiskDecision).decode(msg.value())
            result.decisions.setdefault(d.event_id, set()).add(d.approved)
            if d.approved:
                result.validated[d.event_id] = d
    for msg in read_to_end(kafka, Topics.TICKS):
        tick = Codec(Tick).decode(msg.value())
        result.last_prices[tick.symbol] = tick.price
    client = redis.Redis.from_url(up.urls["redis"], decode_responses=True)
    for name in client.smembers("strategies"):
        result.redis[str(name)] = {str(k): str(v) for k, v in
                                   client.hgetall(f"portfolio:{name}").items()}


@dataclass
class Invariants:
    duplicates: int = 0
    lost: int = 0
    mismatches: int = 0
    limit_breaches: int = 0
    details: list[str] = field(default_factory=list)


def check(result: RunResult) -> Invariants:
    """Everything that must hold, from the topics and Redis only."""
    inv = Invariants()
    # A validated signal becomes exactly one order; an order fills at most its quantity.
    wanted = {client_order_id(sid): d for sid, d in result.validated.items()}
    for coid in wanted:
        if coid not in result.orders:
            inv.lost += 1
            inv.details.append(f"lost: validated signal of order {coid} has no order")
    for coid in result.orders:
        if coid not in wanted:
            inv.duplicates += 1
            inv.details.append(f"order {coid} has no validated signal")
    conflicting = [s for s, v in result.decisions.items() if len(v) > 1]
    inv.duplicates += len(conflicting)
    inv.details += [f"signal {s} both approved and rejected" for s in conflicting]
    filled: Counter[str] = Counter()
    for trade_id, variants in result.fill_variants.items():
        if len(variants) > 1:
            inv.duplicates += 1
            inv.details.append(f"trade {trade_id} published with different contents {variants}")
    for fill in result.fills.values():
        filled[fill.client_order_id] += fill.quantity
    for coid, qty in filled.items():
        order = result.orders.get(coid)
        if order is None:
            inv.lost += 1
            inv.details.append(f"fill of unknown order {coid}")
        elif qty > order.quantity:
            inv.duplicates += 1
            inv.details.append(f"order {coid} filled {qty} > {order.quantity}")
    for coid, order in result.orders.items():
        if filled.get(coid, 0) < order.quantity:
            inv.lost += 1
            inv.details.append(f"order {coid} never (fully) filled")
    # Redis equals an offline recomputation from orders.filled.
    ledger = Ledger(result.redis)
    for fill in sorted(result.fills.values(), key=lambda f: (f.exchange_ts, f.trade_id)):
        ledger.apply(fill)
    for symbol, price in result.last_prices.items():
        ledger.mark(symbol, price)
    for snap in ledger.snapshots():
        got = result.redis.get(snap.name, {})
        want = {"fills": str(snap.fills), "realised_pnl": f"{snap.realised_pnl}",
                **{f"position:{p.symbol}": str(p.quantity) for p in snap.positions}}
        for key, value in want.items():
            have = got.get(key, "0")
            if (float(have) if key == "realised_pnl" else have) != (
                    float(value) if key == "realised_pnl" else value):
                inv.mismatches += 1
                inv.details.append(f"redis {snap.name} {key}={have}, fills say {value}")
    # No risk limit broken: position per instrument, order quantity.
    position: dict[tuple[str, str], int] = defaultdict(int)
    for fill in sorted(result.fills.values(), key=lambda f: (f.exchange_ts, f.trade_id)):
        key = (fill.strategy, fill.symbol)
        position[key] += fill.side.sign * fill.quantity
        if abs(position[key]) > PROFILE["maxPositionPerInstrument"]:
            inv.limit_breaches += 1
            inv.details.append(f"{key} position {position[key]}")
    for order in result.orders.values():
        if order.quantity > PROFILE["maxOrderQuantity"]:
            inv.limit_breaches += 1
    return inv


def compare(run: RunResult, reference: RunResult) -> list[str]:
    """Orders and fills (ids, prices, quantities) that differ from the reference run."""
    def orders(r: RunResult) -> set[tuple[str, str, str, int]]:
        return {(o.client_order_id, o.symbol, o.side.value, o.quantity)
                for o in r.orders.values()}

    def fills(r: RunResult) -> set[tuple[str, str, float, int]]:
        return {(f.trade_id, f.client_order_id, f.price, f.quantity) for f in r.fills.values()}

    diff = [f"order only in {name}: {x}" for name, x in
            [("run", o) for o in orders(run) - orders(reference)]
            + [("reference", o) for o in orders(reference) - orders(run)]]
    diff += [f"fill only in {name}: {x}" for name, x in
             [("run", f) for f in fills(run) - fills(reference)]
             + [("reference", f) for f in fills(reference) - fills(run)]]
    return diff


@contextmanager
def workspace(ticks: int) -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="alphaspt-chaos-") as tmp:
        root = Path(tmp)
        replay = root / "chaos.csv"
        write_replay(replay, ticks)
        yield root, replay


def run(broker: str, ticks: int, faults: Faults, *, speed: float = 10.0, seed: int = 1,
        root: Path, replay: Path, name: str,
        on_progress: Callable[[str], None] = lambda s: None) -> RunResult:
    """One run of the pipeline over ``replay`` with ``faults``; returns what it saw."""
    workdir = root / name
    write_manifests(workdir / "manifests")
    up = Up(workdir, broker, replay, speed)
    result = RunResult(broker=broker, ticks=ticks)
    rng = random.Random(seed)
    started = time.monotonic()
    up.start()
    try:
        duration = ticks * 0.020 / speed  # seconds of replay at this speed
        schedule = sorted(rng.uniform(0.05, 0.9) * duration for _ in range(faults.kills))
        victims = list(STAGES) + list(faults.favour) * 3
        order = [STAGES[i % len(STAGES)] for i in range(min(faults.kills, len(STAGES)))]
        order += [rng.choice(victims) for _ in range(faults.kills - len(order))]
        rng.shuffle(order)
        t0 = time.monotonic()
        outage_at = 0.4 * duration
        outages_done = False
        for at, stage in zip(schedule, order, strict=True):
            if not outages_done and at > outage_at:
                _outages(up, faults, on_progress)
                outages_done = True
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            for _attempt in range(20):  # the victim may be restarting after a fault
                up.read()
                proc = up.workers().get(stage)
                if proc is not None and alive(proc):
                    with suppress(psutil.Error):
                        proc.send_signal(signal.SIGKILL)
                        result.kills += 1
                        on_progress(f"kill {stage} at {time.monotonic() - t0:.1f}s")
                        break
                time.sleep(0.5)
        if not outages_done:
            time.sleep(max(0.0, t0 + outage_at - time.monotonic()))
            _outages(up, faults, on_progress)
        wait_drained(up, ticks, timeout=duration * 4 + 180)
        collect(up, result)
    finally:
        result.exit_code = up.stop()
        result.log = up.lines
        result.seconds = time.monotonic() - started
    return result


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a killed child stays one until its parent reaps it)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _outages(up: Up, faults: Faults, say: Callable[[str], None]) -> None:
    if faults.stall_redis:
        proc = up.server("redis")
        if proc is not None:
            say(f"SIGSTOP redis for {faults.stall_redis:g}s")
            proc.send_signal(signal.SIGSTOP)
            time.sleep(faults.stall_redis)
            proc.send_signal(signal.SIGCONT)
    if faults.pause_stage is not None:
        paused, killed = faults.pause_stage
        workers = up.workers()
        if paused in workers:
            say(f"SIGSTOP {paused} for 25s, SIGKILL {killed} meanwhile")
            workers[paused].send_signal(signal.SIGSTOP)
            time.sleep(5)
            with suppress(KeyError, psutil.Error):
                up.workers()[killed].send_signal(signal.SIGKILL)
            time.sleep(20)
            workers[paused].send_signal(signal.SIGCONT)
    for wanted, server, recover in ((faults.restart_postgres, "postgres", 5),
                                    (faults.kill_broker, "kafka", 10)):
        proc = up.server(server) if wanted else None
        if proc is not None:
            say(f"SIGKILL {server} (up restarts it)")
            proc.send_signal(signal.SIGKILL)
            time.sleep(recover)


def figures(kills: int, inv: Invariants, differs: int) -> str:
    return (f"kills={kills} duplicates={inv.duplicates} lost={inv.lost} "
            f"mismatches={inv.mismatches} limit_breaches={inv.limit_breaches} "
            f"differs_from_reference={differs}")


def summary(result: RunResult) -> str:
    return json.dumps({"broker": result.broker, "ticks": result.ticks,
                       "orders": len(result.orders), "fills": len(result.fills),
                       "kills": result.kills, "seconds": round(result.seconds, 1),
                       "exit": result.exit_code})
