"""The StreamProcessor on a real broker: exactly once through SIGKILL, and dead letters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Message

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Tick, Topics
from alphaspt.core.streaming import EventProducer

pytestmark = pytest.mark.integration

STAGE = Path(__file__).with_name("stage_for_tests.py")
N = 600


def spawn(kafka: KafkaConfig, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(STAGE), kafka.bootstrap_servers, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def feed(producer: EventProducer, topic: str, n: int, symbols: int = 6) -> None:
    for i in range(n):
        producer.send(topic, f"S{i % symbols}",
                      Tick(event_id=str(i), exchange_ts=i, symbol=f"S{i % symbols}",
                           price=float(i)))
    producer.flush()


@pytest.mark.skipif(
    os.environ.get("ALPHASPT_TEST_KAFKA", "tansu") != "apache",
    reason="tansu hands aborted transactional records to read_committed consumers "
    "(seen: ~200 of 600 outputs twice); exactly-once is asserted on Apache Kafka in CI",
)
def test_sigkill_mid_batch_then_restart_produces_each_output_exactly_once(
    kafka: KafkaConfig, unique: str, make_topics: Callable[..., None],
    producer: EventProducer, read_all: Callable[..., list[Message]],
) -> None:
    src, dst, state = f"eos-in-{unique}", f"eos-out-{unique}", f"eos-state-{unique}"
    make_topics(src, dst, Topics.dlq(src), partitions=3)
    make_topics(state)
    feed(producer, src, N)
    args = (src, dst, f"eos-{unique}", f"eos-tx-{unique}")

    # First run: it stalls inside the transaction of the batch that reaches 300 inputs,
    # after producing that batch's outputs; killed there without warning.
    first = spawn(kafka, *args, "0", state, "300")
    deadline = time.monotonic() + 60
    while True:
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        assert time.monotonic() < deadline, "the stage never reached its stall"
        partial = read_all(dst, expect=1, timeout=10, settle=0.5)
        uncommitted = read_all(dst, expect=1, timeout=10, committed=False, settle=0.5)
        if len(uncommitted) > len(partial):
            break
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert 0 < len(partial) < N, "the kill must land mid-stream"

    # Second run to completion: the new producer fences the dead one's transaction.
    second = spawn(kafka, *args, "0", state)
    try:
        outputs = read_all(dst, expect=N, timeout=120)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0

    codec = Codec(Tick)
    ids = Counter(codec.decode(m.value()).event_id for m in outputs)
    assert set(ids) == {f"out-{i}" for i in range(N)}
    assert max(ids.values()) == 1, [k for k, c in ids.items() if c > 1][:10]
    # The state (a running count) was committed with the offsets, so after the restart it
    # continued from exactly the committed input: the counts are 1..N, each once.
    counts = sorted(codec.decode(m.value()).volume for m in outputs)
    assert counts == list(range(1, N + 1))


@pytest.mark.parametrize("mode", ["exactly-once", "at-least-once"])
def test_malformed_and_unprocessable_messages_go_to_the_dlq_and_the_stage_keeps_going(
    kafka: KafkaConfig, unique: str, make_topics: Callable[..., None],
    producer: EventProducer, read_all: Callable[..., list[Message]], mode: str,
) -> None:
    src, dst = f"dlq-in-{unique}", f"dlq-out-{unique}"
    make_topics(src, dst, Topics.dlq(src))
    producer.send_raw(src, "k1", b"{not json")
    producer.send(src, "k2", Tick(event_id="p", exchange_ts=1, symbol="POISON", price=1.0))
    producer.send_raw(src, "k3", b'{"event_id": "x", "exchange_ts": 1, "price": "high"}')
    feed(producer, src, 5)

    txid = f"dlq-tx-{unique}" if mode == "exactly-once" else "-"
    stage = spawn(kafka, src, dst, f"dlq-{unique}", txid, "0")
    try:
        outputs = read_all(dst, expect=5, timeout=60)
        dead = read_all(Topics.dlq(src), expect=3, timeout=30)
    finally:
        stage.send_signal(signal.SIGTERM)
        assert stage.wait(30) == 0, "SIGTERM must shut the stage down cleanly"

    assert sorted(Codec(Tick).decode(m.value()).event_id for m in outputs) == [
        f"out-{i}" for i in range(5)
    ]
    by_key = {m.key(): dict(m.headers() or []) for m in dead}
    assert set(by_key) == {b"k1", b"k2", b"k3"}
    assert by_key[b"k1"]["dlq.reason"].startswith(b"undecodable")
    assert b"poison tick" in by_key[b"k2"]["dlq.reason"]
    assert by_key[b"k2"]["dlq.reason"].startswith(b"unprocessable")
    assert b"price" in by_key[b"k3"]["dlq.reason"]
    originals = {m.key(): m.value() for m in dead}
    assert originals[b"k1"] == b"{not json", "the original bytes are kept"
    assert by_key[b"k1"]["dlq.topic"] == src.encode()
