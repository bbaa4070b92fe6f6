"""Consume → process → produce, effectively once on any Kafka-API broker.

A stage subclasses :class:`StreamProcessor`, declares the topics it reads with the event
type of each, and implements :meth:`StreamProcessor.process`, a plain function from one
event to zero or more :class:`Output`. The base class owns all Kafka I/O.

Delivery (DESIGN.md, "Delivery guarantees"): broker transactions are not relied on. Every
output is a deterministic function of the inputs with a deterministic event id, and every
stage de-duplicates its inputs against its own persistent state, so a redelivered input,
or an output produced again after a crash, never has a second effect.

State: a stateful stage keeps its state in memory and mirrors every change with
:meth:`StreamProcessor.touch` (key changed). Every ``commit_interval`` the processor

1. flushes the outputs produced so far (and fails the checkpoint if any was refused),
2. writes the current value of each touched key (or a tombstone) to the stage's
   compacted changelog topic, one partition per task, then a marker with the input
   offsets those values cover, and flushes again,
3. commits the same offsets to the consumer group (for lag; positions come from markers).
   A commit the group refused (a member fenced after a stall, a broker restart) is sent
   again at the next checkpoint, and so is every position after a restore: otherwise a
   stage whose input had ended kept an old committed offset, and its lag, for good.

On start-up, on a rebalance, and after any failure, each owned task is restored from its
changelog partition (:mod:`alphaspt.core.streaming.changelog`) and its input partitions
are positioned at the marker's offsets, so state and positions always agree. A task is an
input partition (``copartitioned = True``: N replicas split the partitions and each owns
only its partitions' state) or all inputs together (``copartitioned = False``: one replica).

A message that cannot be decoded, or whose processing raises, goes to ``<topic>.dlq`` with
the reason in headers and the original key and bytes; the stage carries on.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NamedTuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, DecodeError, Event, Topics, encode
from alphaspt.core.health import (
    ABORTS,
    BATCH_SECONDS,
    CHECKPOINTS,
    LAG,
    MESSAGES,
    STATE_BYTES,
    Health,
)
from alphaspt.core.streaming.admin import (
    TopicSpec,
    admin_client,
    ensure_topics,
    existing_partitions,
)
from alphaspt.core.streaming.changelog import (
    CLAIM_KEY,
    EPOCH_HEADER,
    MARKER_KEY,
    MAX_RECORD_BYTES,
    ChangelogRecord,
    encode_marker,
    fold,
)
from alphaspt.core.streaming.producer import DeliveryTracker
from alphaspt.exceptions import InfrastructureUnavailable, StateTooLarge

log = logging.getLogger(__name__)

class Output(NamedTuple):
    """One event a stage sends (a named tuple: built once per output, on the hot path)."""

    topic: str
    key: str | None
    event: Event


@dataclass(frozen=True)
class ProcessorConfig:
    group_id: str
    changelog_topic: str | None = None
    """Compacted topic of this stage's state (``None``: a stateless stage)."""
    batch_size: int = 2000
    """Most messages taken from one poll."""
    poll_timeout: float = 0.02
    """Longest wait for input when none is buffered. A poll returns as soon as one message
    arrives (with whatever else is already buffered), so a hop never waits this long while
    input flows."""
    commit_interval: float = 0.2
    """Seconds between checkpoints (Kafka Streams' commit.interval.ms). Outputs are sent at
    once; a crash re-processes at most this much input, whose outputs are de-duplicated."""
    idle_interval: float = 1.0
    """How often :meth:`StreamProcessor.on_idle` runs."""
    flush_timeout: float = 5.0
    """A flush that takes longer fails the checkpoint (the stage restores and retries)."""
    restore_timeout: float = 120.0
    unhealthy_after: float = 10.0
    """Seconds without a successful checkpoint, while input waits, before /readyz fails."""
    auto_offset_reset: str = "earliest"
    """Where a task with no checkpoint starts."""
    max_lead_s: float | None = None
    """An input whose ``exchange_ts`` is more than this many seconds ahead of the wall
    clock goes to the dead-letter topic. On a live (wall-clock) run it can only be bad
    data, and one such tick would carry a stage's clocks (its IST day, the MIS cut-off,
    a symbol's last tick, which older ones never pass) into the future for good.
    ``None``: no limit (replays and the mock market run on event time)."""
    extra_consumer_config: Mapping[str, Any] = field(default_factory=dict)
    extra_producer_config: Mapping[str, Any] = field(default_factory=dict)


class StreamProcessor(ABC):
    """Base of every stream stage. Subclasses set ``inputs`` and implement ``process``."""

    stage: str = "stage"
    copartitioned: bool = False
    """State per input partition (scale out by partition) instead of one task."""

    def __init__(
        self,
        kafka: KafkaConfig,
        config: ProcessorConfig,
        inputs: Mapping[str, Codec[Any]],
    ) -> None:
        self.kafka = kafka
        self.config = config
        self.inputs = dict(inputs)
        self.task = 0
        """The task of the message being processed (0 for a single-task stage)."""
        self.current_partition = 0
        """The partition of the message being processed."""
        self.current_topic = ""
        self.current_offset = 0
        self._held: dict[tuple[str, int], set[int]] = {}
        self._rebalances = 0
        """Assignment changes so far (each assign, revoke or loss)."""
        self._running = False
        self._stop_requested = False
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._delivery = DeliveryTracker()
        self._tasks: dict[int, int] = {}
        """Owned task → epoch (the offset of its claim in the changelog)."""
        self._touched: dict[int, set[str]] = {}
        self._paused: set[str] = set()
        self._nonces: dict[int, bytes] = {}
        self._restore_failed: str | None = None
        """Why the last restore failed (the stage owns nothing until a rejoin works)."""
        self._rejoin_at: float | None = None
        self._live: dict[int, set[str]] = {}
        """Keys with a value in each owned task's changelog (bounded by the state)."""
        self._positions: dict[tuple[str, int], int] = {}
        self._marked: dict[tuple[str, int], int] = {}
        """Input partition → the offset the last marker (or, stateless, commit) covers."""
        self._committed: dict[tuple[str, int], int] = {}
        """Input partition → the offset last sent to the group and not refused (one entry
        per owned input partition)."""
        self._seq = 0
        self._last_checkpoint = time.monotonic()
        self._last_idle = time.monotonic()
        self._failing_since: float | None = None
        self._failures = 0
        self.processed = 0
        self.dead_lettered = 0
        self.state_bytes = 0
        self.health = Health()
        self._processed_metric = MESSAGES.labels(self.stage, "processed")
        self._pending: list[tuple[str, str | None, bytes]] = []
        """Outputs of the current batch, produced together when it ends (see _send)."""

    # -- what a stage implements -------------------------------------------------------

    @abstractmethod
    def process(self, topic: str, event: Event) -> Iterable[Output]:
        """Turn one input event into outputs. Raise to dead-letter the input."""

    def on_idle(self) -> Iterable[Output]:
        """Called every ``idle_interval`` seconds; outputs are sent like any other."""
        return ()

    def on_start(self) -> None:
        """Called once before the first poll, after the Kafka clients exist."""

    def after_commit(self) -> None:
        """Called after a checkpoint made the outputs and state so far durable."""

    def state_value(self, task: int, key: str) -> bytes | None:
        """The current value of a touched key, or ``None`` if the key is gone."""
        return None

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        """Replace the state of ``task`` with these committed key/values."""

    def drop_task(self, task: int) -> None:
        """Forget the state of a task this instance no longer owns."""

    def touch(self, key: str, task: int | None = None) -> None:
        """Mark ``key`` (of the current task) changed: the next checkpoint writes it."""
        task = self.task if task is None else task
        keys = self._touched.get(task)
        if keys is None:
            keys = self._touched[task] = set()
        keys.add(key)

    @property
    def owns_state(self) -> bool:
        """Whether the in-memory state is a restored, consistent one (it owns its tasks)."""
        return bool(self._tasks) and self._restore_failed is None

    def position(self, topic: str, partition: int) -> int | None:
        """The next offset this stage will consume from a partition it owns."""
        return self._positions.get((topic, partition))

    def backlog(self, topic: str | None = None) -> int:
        """Messages not yet consumed from the partitions this stage has positions in (of
        ``topic``, or of every input), by the client's cached high watermarks."""
        if self._consumer is None:
            return 0
        total = 0
        for (name, partition), position in self._positions.items():
            if topic is not None and name != topic:
                continue
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=0.5, cached=True)
            except KafkaException:
                continue
            total += max(0, high - position)
        return total

    def pause_input(self, topic: str) -> None:
        """Stop fetching ``topic`` (back-pressure) until :meth:`resume_input`; messages
        already handed to the stage in this batch still arrive."""
        if self._consumer is None:
            return
        parts = [tp for tp in self._consumer.assignment() if tp.topic == topic]
        if parts:
            self._consumer.pause(parts)
        self._paused.add(topic)

    def resume_input(self, topic: str) -> None:
        if self._consumer is None or topic not in self._paused:
            return
        self._paused.discard(topic)
        parts = [tp for tp in self._consumer.assignment() if tp.topic == topic]
        if parts:
            self._consumer.resume(parts)

    def live_keys(self, task: int | None = None) -> set[str]:
        """Keys that hold a value in the changelog of ``task`` (default: the current one)."""
        return self._live.get(self.task if task is None else task, set())

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def stateful(self) -> bool:
        return self.config.changelog_topic is not None

    def task_of(self, partition: int) -> int:
        return partition if self.copartitioned else 0

    def stop(self, *_: object) -> None:
        self._running = False
        self._stop_requested = True

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("%s: signal %d, stopping after the current batch", self.stage, signum)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, *, max_seconds: float | None = None) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT) and shut down cleanly."""
        if self.config.changelog_topic is not None:
            self._wait_for_changelog(self.config.changelog_topic)
            if self._stop_requested:
                self._stop_requested = False
                return
        self._producer = self._new_producer()
        self._consumer = Consumer(self._consumer_config())
        self._consumer.subscribe(list(self.inputs), on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.on_start()
        self._running = not self._stop_requested
        self.health.ready = True
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while self._running and (deadline is None or time.monotonic() < deadline):
                self.step()
            self._checkpoint_or_recover()
        finally:
            self._stop_requested = False
            self._shutdown()

    def step(self) -> int:
        """Poll one batch, process it, and checkpoint when the interval is up."""
        assert self._consumer is not None
        self.health.beat()
        if self._rejoin_at is not None and time.monotonic() >= self._rejoin_at:
            self._rejoin()
        self._report_restore_failure()
        messages = self.poll()
        started = time.monotonic()
        try:
            if messages:
                self._processed_metric.inc(len(messages))
            self._handle_batch(messages)
            if started - self._last_idle >= self.config.idle_interval:
                self._last_idle = started
                self.task = 0
                self._emit(self.on_idle())
                self._update_lag()
            self._send()
        except KafkaException as exc:
            self._recover(f"producing failed: {exc.args[0]}")
            return len(messages)
        if messages:
            if self.health.unsaved_since is None:
                self.health.unsaved_since = started
            BATCH_SECONDS.labels(self.stage).observe(time.monotonic() - started)
        if time.monotonic() - self._last_checkpoint >= self.config.commit_interval:
            self._checkpoint_or_recover()
        return len(messages)

    def poll(self) -> list[Message]:
        """Up to ``batch_size`` messages, without waiting for a batch to fill.

        ``consume(n, timeout)`` returns only when ``n`` messages are there or ``timeout`` is
        up: a stage whose input arrives slower than ``n`` per ``timeout`` waited the whole
        timeout on every poll, and every hop of the pipeline added it. Here, what is
        already buffered is taken at once; only when nothing is, the stage waits for the
        first message and then takes whatever came with it.

        A rebalance callback runs inside ``consume``: one that runs in the second call
        makes the first call's message stale (its partition may be revoked, its task's
        state dropped or restored to an older checkpoint). It is dropped unprocessed; the
        partition's next owner, this stage or another, consumes it again from the
        checkpoint."""
        consumer = self._consumer
        assert consumer is not None
        size = self.config.batch_size
        messages = consumer.consume(size, 0)
        if messages or size == 1:
            return messages or consumer.consume(1, self.config.poll_timeout)
        first = consumer.consume(1, self.config.poll_timeout)
        if not first:
            return first
        rebalances = self._rebalances
        more = consumer.consume(size - 1, 0)
        if self._rebalances != rebalances:
            return more
        first.extend(more)
        return first

    # -- checkpoints -------------------------------------------------------------------

    def _checkpoint_or_recover(self) -> None:
        try:
            self._checkpoint()
        except (KafkaException, InfrastructureUnavailable) as exc:
            self._recover(f"checkpoint failed: {exc}")
            return
        self._last_checkpoint = time.monotonic()

    def _checkpoint(self) -> None:
        """Make outputs, then state and offsets, durable (see the module docstring)."""
        assert self._producer is not None and self._consumer is not None
        covered = self._covered()
        advanced = {tp: o for tp, o in covered.items() if self._marked.get(tp) != o}
        uncommitted = {tp: o for tp, o in covered.items() if self._committed.get(tp) != o}
        if not advanced and not uncommitted and not any(self._touched.values()):
            if self._restore_failed is None:
                self._healthy()
            return
        self._flush("outputs")
        if self.stateful:
            topic = self.config.changelog_topic
            assert topic is not None
            for task, epoch in self._tasks.items():
                keys = self._touched.pop(task, set())
                offsets = {tp: o for tp, o in covered.items() if self.task_of(tp[1]) == task}
                if not keys and all(self._marked.get(tp) == o for tp, o in offsets.items()):
                    continue
                headers: list[tuple[str, str | bytes | None]] = [
                    (EPOCH_HEADER, str(epoch).encode())]
                live = self._live.setdefault(task, set())
                for key in sorted(keys):
                    value = self.state_value(task, key)
                    if value is None:
                        if key not in live:
                            continue
                        live.discard(key)
                    else:
                        live.add(key)
                    if value is not None and len(value) > MAX_RECORD_BYTES:
                        raise StateTooLarge(
                            f"{self.stage}: state key {key!r} is {len(value)} bytes, over the "
                            f"{MAX_RECORD_BYTES}-byte bound")
                    self.state_bytes += len(key) + (len(value) if value else 0)
                    self._produce(topic, key.encode(), value, headers, task)
                self._seq += 1
                marker = encode_marker(offsets, self._seq)
                self.state_bytes += len(marker)
                self._produce(topic, MARKER_KEY, marker, headers, task)
            self._flush("changelog")
            STATE_BYTES.labels(self.stage).set(self.state_bytes)
        self._marked.update(covered)
        if uncommitted:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in uncommitted.items()],
                asynchronous=True)
            self._committed.update(uncommitted)
        CHECKPOINTS.labels(self.stage).inc()
        self._healthy()
        self.after_commit()

    def _covered(self) -> dict[tuple[str, int], int]:
        """The offsets a checkpoint covers: the positions, but never past a message the
        stage holds back (it is consumed again after a restore)."""
        covered = dict(self._positions)
        for tp, held in self._held.items():
            if held and tp in covered:
                covered[tp] = min(covered[tp], min(held))
        return covered

    def hold(self, offset: int | None = None) -> None:
        """Keep the current message out of checkpoints until :meth:`release`: a stage that
        defers a message keeps no state for it, and a restore consumes it again."""
        tp = (self.current_topic, self.current_partition)
        self._held.setdefault(tp, set()).add(self.current_offset if offset is None else offset)

    def release(self, topic: str, partition: int, offset: int) -> None:
        held = self._held.get((topic, partition))
        if held is not None:
            held.discard(offset)

    def _flush(self, what: str) -> None:
        assert self._producer is not None
        self._send()
        remaining = self._producer.flush(self.config.flush_timeout)
        failures = self._delivery.take_failures()
        if remaining or failures:
            raise InfrastructureUnavailable(
                f"{what}: {remaining} undelivered after {self.config.flush_timeout:g}s, "
                f"refused: {failures[:3]}")

    def _healthy(self) -> None:
        self._failures = 0
        self._failing_since = None
        self.health.unsaved_since = None
        self.health.fail(None)

    def _recover(self, reason: str) -> None:
        """Replace the producer and restore every owned task from its changelog."""
        assert self._consumer is not None
        self._failures += 1
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        ABORTS.labels(self.stage).inc()
        log.warning("%s: %s; restoring from the last checkpoint (%d in a row)", self.stage,
                    reason, self._failures)
        if now - self._failing_since >= self.config.unhealthy_after or self._failures >= 5:
            self.health.fail(f"{self._failures} checkpoints failed in a row: {reason}")
        self._pending.clear()  # outputs of input the restore hands back again
        if self._producer is not None:
            self._producer.purge()
            self._producer.flush(0)
        self._delivery.take_failures()
        self._producer = self._new_producer()
        if self._failures > 1:
            time.sleep(min(2.0, 0.1 * 2 ** min(self._failures, 5)))
        try:
            tasks = list(self._tasks)
            self._claim_all(tasks)
            for task in tasks:
                self.drop_task(task)
                self._touched.pop(task, None)
                offsets = self._restore(task)
                for tp in self._consumer.assignment():
                    if self.task_of(tp.partition) == task:
                        tp.offset = offsets.get((tp.topic, tp.partition), self._reset_offset())
                        self._consumer.seek(tp)
        except (KafkaException, InfrastructureUnavailable) as exc:
            self._restore_failed_with(str(exc))
        self._last_checkpoint = time.monotonic()

    def _restore_failed_with(self, reason: str) -> None:
        """No consistent state: drop everything owned; leave the group and join again in a
        second (the assignment restores)."""
        log.warning("%s: restore failed (%s); joining the group again", self.stage, reason)
        if self._restore_failed is None:
            self._failing_since = self._failing_since or time.monotonic()
        self._restore_failed = reason
        for task in list(self._tasks):
            self.drop_task(task)
        self._tasks.clear()
        self._touched.clear()
        self._positions.clear()
        self._marked.clear()
        self._committed.clear()
        self._held.clear()
        self._nonces.clear()
        self._rejoin_at = time.monotonic() + 1.0
        self._report_restore_failure()

    def _report_restore_failure(self) -> None:
        """Not ready once restores have failed for ``unhealthy_after`` seconds."""
        if self._restore_failed is not None and self._failing_since is not None and \
                time.monotonic() - self._failing_since >= self.config.unhealthy_after:
            self.health.fail(f"cannot restore its state: {self._restore_failed}")

    def _rejoin(self) -> None:
        assert self._consumer is not None
        self._rejoin_at = None
        try:
            self._consumer.unsubscribe()
            self._consumer.subscribe(list(self.inputs), on_assign=self._on_assign,
                                     on_revoke=self._on_revoke, on_lost=self._on_lost)
        except KafkaException as exc:
            self._restore_failed_with(f"subscribe: {exc}")

    # -- rebalances and restore ----------------------------------------------------------

    def _reset_offset(self) -> int:
        return OFFSET_END if self.config.auto_offset_reset == "latest" else OFFSET_BEGINNING

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        if self.stateful:
            try:
                new = [t for t in sorted({self.task_of(tp.partition) for tp in partitions})
                       if t not in self._tasks]
                self._claim_all(new)
                for task in new:
                    offsets = self._restore(task)
                    for tp in partitions:
                        if self.task_of(tp.partition) == task:
                            tp.offset = offsets.get((tp.topic, tp.partition),
                                                    self._reset_offset())
            except (KafkaException, InfrastructureUnavailable) as exc:
                self._restore_failed_with(str(exc))
                # Own nothing rather than let the client assign the partitions at their
                # committed offsets with no state behind them.
                consumer.assign([])
                self.health.assigned = 0
                return
            self._restore_failed = None
            if not self.copartitioned:
                self._check_single_task(consumer, partitions)
        log.info("%s: assigned %s", self.stage,
                 ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions))
        consumer.assign(partitions)
        self.health.assigned = len(partitions)
        self.health.alert("group", None)
        self._paused.clear()  # a new assignment fetches everything; the stage pauses again

    def _check_single_task(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        have = {(tp.topic, tp.partition) for tp in partitions}
        try:
            parts = existing_partitions(admin_client(self.kafka), 5.0)
        except InfrastructureUnavailable:
            return
        missing = [f"{t}[{p}]" for t in self.inputs for p in range(parts.get(t, 0))
                   if (t, p) not in have]
        if missing:
            reason = (f"{self.stage} keeps one state for all its inputs and runs as one "
                      f"replica, but another replica holds {', '.join(missing[:4])}")
            log.error("%s", reason)
            self.health.fail(reason)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._producer is not None:
            self._checkpoint_or_recover()
        self._release(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Someone else may already own them: nothing of ours may be written for them now.
        self._release(partitions)
        # Said even when idle: a stage with nothing unsaved has no failed checkpoint to
        # report, yet it makes no progress while its broker does not answer.
        self.health.alert("group", f"lost its {len(partitions)} input partitions: the "
                          "group coordinator did not answer within the session timeout; "
                          "rejoining")

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """A refused commit is sent again at the next checkpoint (unless a newer one is
        already on its way)."""
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if (err is not None or tp.error is not None) and \
                    self._committed.get(key) == tp.offset:
                del self._committed[key]

    def _release(self, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.health.assigned = max(0, self.health.assigned - len(partitions))
        for tp in partitions:
            self._held.pop((tp.topic, tp.partition), None)
            self._positions.pop((tp.topic, tp.partition), None)
            self._marked.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)
        for task in {self.task_of(tp.partition) for tp in partitions}:
            if task in self._tasks:
                del self._tasks[task]
                self._touched.pop(task, None)
                self._live.pop(task, None)
                self.drop_task(task)

    def _claim_all(self, tasks: list[int]) -> None:
        """Append the claims of several tasks with one flush (a rebalance restores many)."""
        topic = self.config.changelog_topic
        if topic is None:
            return
        for task in tasks:
            self._nonces[task] = uuid.uuid4().hex.encode()
            self._produce(topic, CLAIM_KEY, self._nonces[task], None, task)
        self._flush("claim")

    def _restore(self, task: int) -> dict[tuple[str, int], int]:
        """Claim ``task``, fold its changelog up to the claim, hand the state to the stage."""
        topic = self.config.changelog_topic
        if topic is None:
            self._tasks[task] = -1
            return {}
        started = time.monotonic()
        if task not in self._nonces:
            self._claim_all([task])
        nonce = self._nonces.pop(task)
        claim: list[int] = []
        restored = fold(self._read_changelog(topic, task, nonce, claim))
        epoch = claim[0]
        self._tasks[task] = epoch
        for table in (self._held, self._positions, self._marked, self._committed):
            for tp in [tp for tp in table if self.task_of(tp[1]) == task]:
                del table[tp]
        self.restore_task(task, restored.items)
        self._live[task] = set(restored.items)
        for key in restored.orphans:
            self._live[task].add(key)  # so that a key gone now is written as a tombstone
            self.touch(key, task)
        for tp, offset in restored.offsets.items():
            self._positions[tp] = offset
            self._marked[tp] = offset
        self._seq = max(self._seq, restored.seq)
        log.info("%s: task %d restored from %s[%d] in %.2f s: %d keys from %d records "
                 "(%d fenced, %d orphaned), epoch %d", self.stage, task, topic, task,
                 time.monotonic() - started, len(restored.items), restored.records,
                 restored.ignored, len(restored.orphans), epoch)
        return restored.offsets

    def _read_changelog(self, topic: str, task: int, nonce: bytes,
                        claim: list[int]) -> Iterator[ChangelogRecord]:
        """The partition's records up to and including our own claim (found by its nonce)."""
        reader = Consumer({
            **self.kafka.client_config(),
            "group.id": f"alphaspt-restore-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": 10,
        })
        try:
            reader.assign([TopicPartition(topic, task, OFFSET_BEGINNING)])
            deadline = time.monotonic() + self.config.restore_timeout
            while time.monotonic() < deadline:
                for msg in reader.consume(5000, 0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise InfrastructureUnavailable(f"reading {topic}[{task}]: {err}")
                    key = msg.key() or b""
                    offset = msg.offset() or 0
                    epoch = None
                    for name, value in list(msg.headers() or []):
                        if name == EPOCH_HEADER and isinstance(value, bytes):
                            epoch = int(value)
                    yield ChangelogRecord(offset, key, msg.value(), epoch)
                    if key == CLAIM_KEY and msg.value() == nonce:
                        claim.append(offset)
                        return
            raise InfrastructureUnavailable(
                f"restoring {topic}[{task}]: own claim not seen within "
                f"{self.config.restore_timeout:g}s")
        finally:
            reader.close()

    def _wait_for_changelog(self, topic: str) -> None:
        """Create the changelog, waiting out a broker that is down (no crash loop)."""
        while not self._stop_requested:
            try:
                self._ensure_changelog(topic)
                self.health.fail(None)
                return
            except InfrastructureUnavailable as exc:
                if "partitions but" in str(exc):
                    raise
                self.health.fail(f"waiting for the broker: {exc}")
                log.warning("%s: waiting for the broker: %s", self.stage, exc)
                time.sleep(1.0)

    def _ensure_changelog(self, topic: str) -> None:
        admin = admin_client(self.kafka)
        parts = existing_partitions(admin)
        wanted = max((parts.get(t, 1) for t in self.inputs), default=1) \
            if self.copartitioned else 1
        ensure_topics(admin, [TopicSpec(topic, wanted, dict(Topics.CHANGELOG_CONFIG))],
                      replication_factor=self.kafka.replication_factor)
        have = existing_partitions(admin).get(topic, 0)
        if have < wanted:
            raise InfrastructureUnavailable(
                f"{topic} has {have} partitions but {self.stage} needs {wanted} (one per "
                f"input partition); recreate it")

    # -- per message -------------------------------------------------------------------

    def _handle_batch(self, messages: list[Message]) -> None:
        """Decode, process and queue the outputs of one poll's messages, in order.

        The per-message work of every stage, written as one loop with the lookups hoisted
        out of it (measured in ``bench/``: a method call per message and per output was a
        fifth of the feature engine's time). ``process`` may return any iterable; it is
        materialised before anything is queued, so an input whose processing raises
        half-way sends nothing and goes to the dead-letter topic whole."""
        codecs = self.inputs
        positions = self._positions
        copartitioned = self.copartitioned
        process = self.process
        max_lead = self.config.max_lead_s or 0.0
        latest = (time.time_ns() + int(max_lead * 1e9)
                  if self.config.max_lead_s is not None else None)
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            topic: str = msg.topic()  # type: ignore[assignment]  # set on every message
            partition: int = msg.partition()  # type: ignore[assignment]
            offset: int = msg.offset()  # type: ignore[assignment]
            self.task = partition if copartitioned else 0
            self.current_partition = partition
            self.current_topic = topic
            self.current_offset = offset
            positions[(topic, partition)] = offset + 1
            self.processed += 1
            try:
                event = codecs[topic].decode(msg.value())
            except DecodeError as exc:
                self._dead_letter(msg, f"undecodable: {exc}")
                continue
            if latest is not None and event.exchange_ts > latest:
                self._dead_letter(msg, _from_the_future(event.exchange_ts, latest, max_lead))
                continue
            try:
                outputs = process(topic, event)
                if type(outputs) is not tuple:
                    outputs = tuple(outputs)
            except StateTooLarge:
                raise
            except Exception as exc:  # a bad event must not stop the stage
                log.exception("%s: processing %s failed", self.stage, event.event_id)
                self._dead_letter(msg, f"unprocessable: {type(exc).__name__}: {exc}")
                continue
            self._emit(outputs)

    def _emit(self, outputs: Iterable[Output]) -> None:
        """Queue outputs for :meth:`_send` (one call per input, not per output)."""
        self._pending.extend([(out.topic, out.key, encode(out.event)) for out in outputs])

    def _send(self) -> None:
        """Produce the batch's outputs back to back (in order), so that the client batches
        them into few requests: produced one by one between events, each would find an
        empty queue and leave in a request of its own (linger.ms is 1). Called at the end
        of every poll batch and before every flush, so checkpoints still cover them."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        producer = self._producer
        assert producer is not None
        i = 0
        while i < len(pending):
            topic, key, value = pending[i]
            try:
                producer.produce(topic, value, key)
            except BufferError:  # the client's queue is full: let it deliver some
                producer.poll(0.05)
                continue
            i += 1
        producer.poll(0)

    def _produce(
        self, topic: str, key: str | bytes | None, value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None, partition: int | None = None,
    ) -> None:
        assert self._producer is not None
        kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _dead_letter(self, msg: Message, reason: str) -> None:
        self.dead_lettered += 1
        MESSAGES.labels(self.stage, "dead_lettered").inc()
        topic = msg.topic() or ""
        log.warning("%s: dead-lettering %s[%d]@%d: %s", self.stage, msg.topic(),
                    msg.partition(), msg.offset(), reason)
        headers: list[tuple[str, str | bytes | None]] = [
            ("dlq.reason", reason.encode()[:4000]),
            ("dlq.stage", self.stage.encode()),
            ("dlq.topic", topic.encode()),
            ("dlq.partition", str(msg.partition()).encode()),
            ("dlq.offset", str(msg.offset()).encode()),
        ]
        self._produce(Topics.dlq(topic), msg.key(), msg.value(), headers)

    def _update_lag(self) -> None:
        """Consumer lag (messages behind the high watermark) into the health and metrics."""
        lag = self.backlog()
        self.health.lag = lag
        LAG.labels(self.stage).set(lag)

    # -- clients -----------------------------------------------------------------------

    def _consumer_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            **self.kafka.consumer_config(),
            "group.id": self.config.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.config.auto_offset_reset,
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            "on_commit": self._on_commit,
        }
        conf.update(self.config.extra_consumer_config)
        return conf

    def _new_producer(self) -> Producer:
        conf: dict[str, Any] = {
            **self.kafka.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "delivery.report.only.error": True,
            "on_delivery": self._delivery,
        }
        conf.update(self.config.extra_producer_config)
        return Producer(conf)

    def _shutdown(self) -> None:
        log.info("%s: shutting down (processed=%d dlq=%d state_bytes=%d)", self.stage,
                 self.processed, self.dead_lettered, self.state_bytes)
        if self._producer is not None:
            self._send()
            self._producer.flush(10)
        if self._consumer is not None:
            try:
                self._consumer.close()
            except KafkaException as exc:
                log.warning("%s: consumer close: %s", self.stage, exc)
        self._producer = None
        self._consumer = None



def _from_the_future(exchange_ts: int, latest: int, max_lead_s: float) -> str:
    """The dead-letter reason of an input stamped after ``latest`` (now + the lead)."""
    ahead = (exchange_ts - latest) / 1e9 + max_lead_s
    return (f"exchange_ts {exchange_ts} is {ahead:.0f} s ahead of the wall clock (more than "
            f"max_lead_s {max_lead_s:g}): a live run takes no event from the future")
