"""The StreamProcessor on a real broker: effectively once through SIGKILL, and dead letters.

No broker transactions: outputs are flushed before each checkpoint, and a checkpoint
writes the changed state keys, then a marker with the input offsets they cover, to the
stage's changelog. A stage killed between the two re-processes the input after the last
marker when it restarts, from the state of that marker, so it produces the same outputs
again, byte for byte: consumers de-duplicate them by event id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Tick, Topics, encode
from alphaspt.core.streaming import EventProducer, ProcessorConfig
from alphaspt.core.streaming.changelog import CLAIM_KEY, MARKER_KEY
from tests.integration.core.stage_for_tests import Doubler

pytestmark = pytest.mark.integration

STAGE = Path(__file__).with_name("stage_for_tests.py")
N = 600
SYMBOLS = 6


class Stage:
    """The test stage in its own process; its stdout lines are collected as they come."""

    def __init__(self, kafka: KafkaConfig, log: Path, *args: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(STAGE), kafka.bootstrap_servers, *args],
            stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_for(self, word: str, timeout: float) -> int:
        """The number printed with the first line starting with ``word``."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if line.startswith(f"{word} "):
                    return int(line.split()[1])
            assert self.proc.poll() is None, f"the stage exited:\n{self.stderr()}"
            assert time.monotonic() < deadline, f"no {word} from the stage:\n{self.stderr()}"
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.log.read_text()[-5000:]

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def stages(kafka: KafkaConfig, tmp_path: Path) -> Iterator[Callable[..., Stage]]:
    started: list[Stage] = []

    def spawn(*args: str) -> Stage:
        stage = Stage(kafka, tmp_path / f"stage-{len(started)}.log", *args)
        started.append(stage)
        return stage

    yield spawn
    for stage in started:
        if stage.proc.poll() is None:
            stage.proc.kill()
            stage.proc.wait(10)


def feed(producer: EventProducer, topic: str, n: int, symbols: int = SYMBOLS) -> list[Tick]:
    ticks = [Tick(event_id=str(i), exchange_ts=i, symbol=f"S{i % symbols}", price=float(i))
             for i in range(n)]
    for tick in ticks:
        producer.send(topic, tick.symbol, tick)
    producer.flush()
    return ticks


def uninterrupted(ticks: list[Tick]) -> dict[str, bytes]:
    """Output id → the output an uninterrupted run gives: the price doubled, and the
    count of the symbol's ticks so far (a symbol's ticks are in one partition, in order)."""
    seen: dict[str, int] = defaultdict(int)
    out = {}
    for t in ticks:
        seen[t.symbol] += 1
        out[f"out-{t.event_id}"] = encode(Tick(
            event_id=f"out-{t.event_id}", exchange_ts=t.exchange_ts, ingest_ts=t.ingest_ts,
            symbol=t.symbol, price=t.price * 2, volume=seen[t.symbol]))
    return out


def committed_offsets(changelog: list[Message]) -> tuple[int, bool]:
    """The input messages covered by each changelog partition's last marker, summed, and
    whether some partition holds a value written after its last marker (an unfinished
    checkpoint's). Only one writer ran, so every record is of the current epoch."""
    by_partition: dict[int, list[Message]] = defaultdict(list)
    for m in changelog:
        by_partition[m.partition() or 0].append(m)
    covered, unfinished = 0, False
    for records in by_partition.values():
        records.sort(key=lambda m: m.offset() or 0)
        markers = [i for i, m in enumerate(records) if m.key() == MARKER_KEY]
        if markers:
            marker = json.loads(records[markers[-1]].value() or b"null")
            covered += sum(marker["offsets"].values())
        after = records[markers[-1] + 1:] if markers else records
        unfinished |= any(m.key() not in (MARKER_KEY, CLAIM_KEY) for m in after)
    return covered, unfinished


@pytest.mark.parametrize("copartitioned", [False, True], ids=["one-task", "copartitioned"])
def test_sigkill_mid_checkpoint_then_restart_produces_each_output_effectively_once(
    unique: str, make_topics: Callable[..., None], producer: EventProducer,
    read_all: Callable[..., list[Message]], stages: Callable[..., Stage],
    copartitioned: bool,
) -> None:
    src, dst, changelog = f"eo-in-{unique}", f"eo-out-{unique}", f"eo-changelog-{unique}"
    make_topics(src, dst, Topics.dlq(src), partitions=3)
    ticks = feed(producer, src, N)
    expected = uninterrupted(ticks)
    args = [src, dst, f"eo-{unique}", "--changelog", changelog, "--delay", "0.002",
            "--commit-interval", "0.1", *(["--copartitioned"] if copartitioned else [])]

    # First run: it stalls in the first checkpoint after 300 inputs that writes two keys
    # of one task, after flushing the outputs and writing the first key, before the
    # marker; killed there without warning.
    first = stages(*args, "--stall-at", str(N // 2))
    stalled_at = first.wait_for("STALLED", timeout=90)
    checkpoints = [int(line.split()[1]) for line in first.lines
                   if line.startswith("CHECKPOINT ")]
    partial = read_all(dst, expect=stalled_at, timeout=30, settle=1.0)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    assert N // 2 <= stalled_at < N, "the kill must land mid-stream"
    assert len(partial) == stalled_at, "every output so far is flushed before a checkpoint"
    assert checkpoints, "checkpoints completed before the stall"

    covered, unfinished = committed_offsets(
        read_all(changelog, expect=1, timeout=30, settle=1.0))
    assert unfinished, "the kill left a state value written after the last marker"
    assert checkpoints[-1] <= covered < stalled_at
    if not copartitioned:
        assert covered == checkpoints[-1], "one task: the last marker is the last checkpoint"

    # Second run to completion: state restored from the last marker (the value written
    # after it ignored), input resumed at the marker's offsets.
    second = stages(*args)
    try:
        outputs = read_all(dst, expect=N + stalled_at - covered, timeout=120)
    finally:
        assert second.terminate() == 0, "SIGTERM must shut the stage down cleanly"

    copies: dict[str, list[bytes]] = defaultdict(list)
    for m in outputs:
        value = m.value() or b""
        copies[Codec(Tick).decode(value).event_id].append(value)
    assert set(copies) == set(expected), "no output missing, none unexpected"
    differ = {i: v for i, v in copies.items() if any(c != expected[i] for c in v)}
    assert not differ, f"outputs unlike an uninterrupted run's: {list(differ.items())[:3]}"
    # Exactly the inputs after the marker were processed twice, with the same ids and
    # bytes: a consumer de-duplicating by id sees one output per input.
    assert len(outputs) == N + stalled_at - covered
    assert sum(len(v) - 1 for v in copies.values()) == stalled_at - covered > 0


@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
def test_malformed_and_unprocessable_messages_go_to_the_dlq_and_the_stage_keeps_going(
    unique: str, make_topics: Callable[..., None], producer: EventProducer,
    read_all: Callable[..., list[Message]], stages: Callable[..., Stage], stateful: bool,
) -> None:
    src, dst = f"dlq-in-{unique}", f"dlq-out-{unique}"
    make_topics(src, dst, Topics.dlq(src))
    producer.send_raw(src, "k1", b"{not json")
    producer.send(src, "k2", Tick(event_id="p", exchange_ts=1, symbol="POISON", price=1.0))
    producer.send_raw(src, "k3", b'{"event_id": "x", "exchange_ts": 1, "price": "high"}')
    future = time.time_ns() + 400 * 10**9  # beyond --max-lead: bad data on a live run
    producer.send(src, "k4", Tick(event_id="f", exchange_ts=future, symbol="S", price=1.0))
    feed(producer, src, 5)

    changelog = ["--changelog", f"dlq-changelog-{unique}"] if stateful else []
    stage = stages(src, dst, f"dlq-{unique}", *changelog, "--max-lead", "300")
    try:
        outputs = read_all(dst, expect=5, timeout=60)
        dead = read_all(Topics.dlq(src), expect=4, timeout=30)
    finally:
        assert stage.terminate() == 0, "SIGTERM must shut the stage down cleanly"

    got = sorted((t.event_id, t.volume) for t in map(Codec(Tick).decode,
                                                       (m.value() for m in outputs)))
    # Stateful: each symbol's first tick (the dead-lettered ones are not counted).
    assert got == [(f"out-{i}", 1 if stateful else 0) for i in range(5)]
    by_key = {m.key(): dict(m.headers() or []) for m in dead}
    assert set(by_key) == {b"k1", b"k2", b"k3", b"k4"}
    assert b"ahead of the wall clock" in by_key[b"k4"]["dlq.reason"]
    assert by_key[b"k1"]["dlq.reason"].startswith(b"undecodable")
    assert b"poison tick" in by_key[b"k2"]["dlq.reason"]
    assert by_key[b"k2"]["dlq.reason"].startswith(b"unprocessable")
    assert b"price" in by_key[b"k3"]["dlq.reason"]
    originals = {m.key(): m.value() for m in dead}
    assert originals[b"k1"] == b"{not json", "the original bytes are kept"
    assert by_key[b"k1"]["dlq.topic"] == src.encode()


def test_a_poll_returns_at_the_first_message_instead_of_waiting_for_a_full_batch(
    unique: str, make_topics: Callable[..., None], producer: EventProducer,
    kafka: KafkaConfig,
) -> None:
    """With a 5 s poll timeout and batches of 2,000, a lone tick is processed within a
    second of being sent: ``consume(2000, 5)`` would have held it until the timeout."""
    src, dst = f"wake-in-{unique}", f"wake-out-{unique}"
    make_topics(src, dst)
    stage = Doubler(kafka, ProcessorConfig(group_id=f"wake-{unique}", batch_size=2000,
                                           poll_timeout=5.0), src, dst, 0.0)
    runner = threading.Thread(target=stage.run, kwargs={"max_seconds": 120}, daemon=True)
    runner.start()
    try:
        def send_and_time(i: int) -> float:
            sent = time.monotonic()
            producer.send(src, "S", Tick(event_id=f"w{i}", exchange_ts=i, symbol="S",
                                         price=1.0))
            producer.flush()
            while stage.processed <= i:
                assert runner.is_alive(), "the stage stopped"
                assert time.monotonic() - sent < 60, "the tick was never processed"
                time.sleep(0.002)
            return time.monotonic() - sent

        send_and_time(0)  # the group join and first fetch
        waits = [send_and_time(i) for i in range(1, 4)]
        assert stage.health.snapshot()["assigned"] == 1, "/status names its one partition"
    finally:
        stage.stop()
        runner.join(30)
    assert max(waits) < 1.0, f"seconds from send to processed: {waits}"
    assert stage.health.assigned == 0, "closing the consumer gives the partition back"


def test_a_restored_stage_commits_its_positions_when_the_group_holds_older_ones(
    unique: str, make_topics: Callable[..., None], producer: EventProducer,
    kafka: KafkaConfig,
) -> None:
    """The group's offsets are for lag only (positions come from the changelog's markers),
    yet a commit the group refused (a stage fenced after a stall) was never sent again: a
    stage whose input had ended showed the old offset, and its lag, for good; the chaos
    suite waited on it until its timeout. Here the group is set back to 0 while the stage
    is down: restarted, with no new input, it commits its positions within seconds and
    processes nothing twice."""
    from confluent_kafka import Consumer, TopicPartition

    src, dst, changelog = f"rc-in-{unique}", f"rc-out-{unique}", f"rc-changelog-{unique}"
    group = f"rc-{unique}"
    make_topics(src, dst, partitions=3)
    feed(producer, src, 60)
    config = ProcessorConfig(group_id=group, changelog_topic=changelog, batch_size=50,
                             commit_interval=0.1)
    group_view = Consumer({**kafka.client_config(), "group.id": group,
                           "enable.auto.commit": False})

    def committed() -> int:
        parts = group_view.committed([TopicPartition(src, p) for p in range(3)], timeout=10)
        return sum(max(tp.offset, 0) for tp in parts)

    def run_until(stage: Doubler, done: Callable[[], bool]) -> None:
        runner = threading.Thread(target=stage.run, kwargs={"max_seconds": 120}, daemon=True)
        runner.start()
        try:
            deadline = time.monotonic() + 60
            while not done():
                assert runner.is_alive(), "the stage stopped"
                assert time.monotonic() < deadline, f"group offsets stay at {committed()}"
                time.sleep(0.2)
        finally:
            stage.stop()
            runner.join(30)

    try:
        first = Doubler(kafka, config, src, dst, 0.0)
        run_until(first, lambda: first.processed == 60 and committed() == 60)
        group_view.commit(offsets=[TopicPartition(src, p, 0) for p in range(3)],
                          asynchronous=False)
        assert committed() == 0, "the group set back while the stage is down"
        second = Doubler(kafka, config, src, dst, 0.0)
        run_until(second, lambda: committed() == 60)
        assert second.processed == 0, "positions come from the marker, not the group"
    finally:
        group_view.close()
