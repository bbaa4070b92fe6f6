"""Scale-out by partition: three feature-engine replicas split market.ticks' partitions.

Each replica owns the state of its partitions (changelog partition = ticks partition).
One replica is SIGKILLed mid-stream: the consumer group moves its partitions to the other
two, which restore those partitions' state from the changelog and carry on. Every tick
must then have become exactly one features event, equal to what one uninterrupted
calculator computes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Features, Tick, Topics
from alphaspt.core.streaming import EventProducer, TopicSpec, admin_client, ensure_topics
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.strategies import FeatureCalculator

pytestmark = pytest.mark.integration

SYMBOLS = [f"SYM{i:02d}" for i in range(12)]
TICKS = 24_000


def ticks(run: str) -> list[Tick]:
    out = []
    base = 1_736_221_500_000_000_000
    for i in range(TICKS):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        price = 100 + (i % 97) * 0.05 + (i // len(SYMBOLS)) % 13 * 0.1
        out.append(Tick(event_id=f"{run}-{i}", exchange_ts=base + i * 1_000_000,
                        symbol=f"{run}{symbol}", price=round(price, 2), quantity=1,
                        volume=i // len(SYMBOLS) + 1))
    return out


def test_three_replicas_split_partitions_and_survive_a_kill(
    kafka_bootstrap: str, tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:6].upper()
    kafka = KafkaConfig(bootstrap_servers=kafka_bootstrap)
    # Topics of their own (the stage takes its topic names from Topics; the test gives it a
    # namespace of its own so its consumer group and changelog are fresh).
    ensure_topics(admin_client(kafka), [TopicSpec(Topics.TICKS, 3), TopicSpec(Topics.FEATURES, 3)])
    sent = ticks(run)
    producer = EventProducer(kafka)
    for tick in sent:
        producer.send(Topics.TICKS, tick.symbol, tick)
    producer.flush()

    namespace = f"scale{run.lower()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")}
    env.update({
        "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALPHASPT_POSTGRES__URL": "postgresql+asyncpg://unused@127.0.0.1:1/unused",
        "ALPHASPT_NAMESPACE": namespace,
        "ALPHASPT_SETTINGS_FILE": "/nonexistent/settings.toml",
    })
    changelog = Topics.changelog("feature-engine", namespace)
    logs = [tmp_path / f"fe{i}.log" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "alphaspt", "worker", "feature-engine"],
                              env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
             for log in logs]
    mine = {f"{run}{s}" for s in SYMBOLS}
    codec = Codec(Features)

    def features() -> list[Features]:
        out = []
        for msg in read_to_end(kafka, Topics.FEATURES, quiet=0.2):
            f = codec.decode(msg.value())
            if f.symbol in mine:
                out.append(f)
        return out

    expected_count = TICKS - len(SYMBOLS)  # a symbol's first tick only starts its state
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len({f.event_id for f in features()}) >= expected_count // 3:
                break
            time.sleep(0.5)
        # Every replica holds a share before one is killed (a slow join under load would
        # otherwise leave a replica with nothing to take over).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(
                "assigned market.ticks" in log.read_text(errors="replace") for log in logs):
            time.sleep(0.5)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        deadline = time.monotonic() + 180
        got: list[Features] = []
        while time.monotonic() < deadline:
            got = features()
            if len({f.event_id for f in got}) >= expected_count:
                break
            time.sleep(1.0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    log_text = "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)
    assert "assigned" in logs[1].read_text() and "assigned" in logs[2].read_text(), log_text

    calc = FeatureCalculator()
    oracle = {}
    for tick in sent:
        f = calc.update(tick)
        if f is not None:
            oracle[f.event_id] = f
    by_id: dict[str, set[tuple[int, float, float, float]]] = {}
    for f in got:
        by_id.setdefault(f.event_id, set()).add((f.count, f.ema_fast, f.ema_slow, f.zscore))
    missing = set(oracle) - set(by_id)
    assert not missing, f"{len(missing)} ticks never became features\n{log_text}"
    conflicting = [i for i, v in by_id.items() if len(v) > 1]
    assert not conflicting, f"{len(conflicting)} ticks became two different features"
    wrong = [i for i, v in by_id.items()
             if v != {(oracle[i].count, oracle[i].ema_fast, oracle[i].ema_slow, oracle[i].zscore)}]
    assert not wrong, f"{len(wrong)} features differ from one uninterrupted calculator"
    records = {msg.partition() for msg in read_to_end(kafka, changelog, quiet=0.2)}
    assert records == {0, 1, 2}, "one changelog partition per ticks partition"
