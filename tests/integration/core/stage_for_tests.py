"""A tiny stage used by the streaming tests, runnable as a separate process.

    python stage_for_tests.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP [--changelog TOPIC]
        [--copartitioned] [--delay S] [--commit-interval S] [--stall-at N]

It doubles each input Tick's price into an output Tick whose id derives from the input's
(and whose ingest time is the input's: an output produced again is byte for byte the same).
A Tick whose symbol is ``POISON`` makes ``process`` raise (it must be dead-lettered).

With ``--changelog``, the stage counts the ticks it has seen per symbol, in state kept in
that changelog topic (one key per symbol, written with ``touch``), and puts the running
count of the tick's symbol in each output's ``volume``. Ticks are keyed by symbol, so each
symbol's ticks are in one partition, in order: the output of every input is determined by
the input alone, however the run is interrupted. ``--copartitioned`` keeps the state per
input partition (one changelog partition per task) instead of one task for all.

After every checkpoint the stage prints ``CHECKPOINT <inputs processed>`` on stdout. With
``--stall-at N``, once N inputs are processed, the first checkpoint that writes two keys of
one task stalls for a minute after writing the first (delivered to the broker) and before
the second and the marker, and prints ``STALLED <inputs processed>``: the moment a crash
test kills it, with outputs flushed, the changelog holding a value past the last marker,
and the marker not written.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterable, Mapping

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, Event, Tick
from alphaspt.core.streaming import Output, ProcessorConfig, StreamProcessor


class Doubler(StreamProcessor):
    stage = "doubler"

    def __init__(self, kafka: KafkaConfig, config: ProcessorConfig, in_topic: str,
                 out_topic: str, delay: float, *, copartitioned: bool = False,
                 stall_at: int | None = None) -> None:
        super().__init__(kafka, config, {in_topic: Codec(Tick)})
        self.copartitioned = copartitioned
        self.out_topic = out_topic
        self.delay = delay
        self.counts: dict[int, dict[str, int]] = {}
        """Task → symbol → ticks seen."""
        self.stall_at = stall_at
        self._written: dict[int, int] = {}
        """Task → keys written in the checkpoint under way."""

    def process(self, topic: str, event: Event) -> Iterable[Output]:
        assert isinstance(event, Tick)
        if event.symbol == "POISON":
            raise ValueError("poison tick")
        if self.delay:
            time.sleep(self.delay)
        volume = 0
        if self.stateful:
            counts = self.counts.setdefault(self.task, {})
            volume = counts[event.symbol] = counts.get(event.symbol, 0) + 1
            self.touch(event.symbol)
        out = Tick(event_id=f"out-{event.event_id}", exchange_ts=event.exchange_ts,
                   ingest_ts=event.ingest_ts, symbol=event.symbol, price=event.price * 2,
                   volume=volume)
        yield Output(self.out_topic, event.symbol, out)

    def state_value(self, task: int, key: str) -> bytes | None:
        written = self._written[task] = self._written.get(task, 0) + 1
        if self.stall_at is not None and self.processed >= self.stall_at and written == 2:
            self.stall_at = None
            assert self._producer is not None
            self._producer.flush(10)  # the first key's value is on the broker
            print("STALLED", self.processed, flush=True)
            time.sleep(60)
        count = self.counts.get(task, {}).get(key)
        return None if count is None else str(count).encode()

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        self.counts[task] = {key: int(value) for key, value in items.items()}

    def drop_task(self, task: int) -> None:
        self.counts.pop(task, None)

    def after_commit(self) -> None:
        self._written.clear()
        print("CHECKPOINT", self.processed, flush=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("in_topic")
    parser.add_argument("out_topic")
    parser.add_argument("group")
    parser.add_argument("--changelog")
    parser.add_argument("--copartitioned", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--commit-interval", type=float, default=0.2)
    parser.add_argument("--stall-at", type=int)
    parser.add_argument("--max-lead", type=float)
    args = parser.parse_args()
    stage = Doubler(
        KafkaConfig(bootstrap_servers=args.bootstrap),
        ProcessorConfig(group_id=args.group, changelog_topic=args.changelog, batch_size=50,
                        commit_interval=args.commit_interval, max_lead_s=args.max_lead),
        args.in_topic, args.out_topic, args.delay, copartitioned=args.copartitioned,
        stall_at=args.stall_at,
    )
    stage.install_signal_handlers()
    stage.run()


if __name__ == "__main__":
    main()
