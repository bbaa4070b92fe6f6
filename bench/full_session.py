"""A whole NSE session through ``alphaspt up`` on Apache Kafka: no stall, bounded state.

    python bench/full_session.py [--ticks 2000000] [--broker apache]

Replays a simulated trading day (09:15-15:30 IST, ``--ticks`` ticks of five symbols, as
fast as the pipeline takes them) through both example strategies, samples every stage's
resident memory every 5 s, waits until every consumer group has caught up, and prints:

- orders, fills and the wall time, and the throughput against the ticks' own rate;
- per stateful stage, the bytes it wrote to its changelog against the bytes of its input
  topics (the baseline: what it read), i.e. state bytes per input byte;
- per stage, resident memory after warm-up (first sample past 20 % of the run) and at
  the end, and the largest sample (flat memory: end / warm-up near 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, OrderRejected, RiskDecision, Topics
from alphaspt.core.streaming.reader import read_to_end
from tests.chaos.harness import (
    PROFILE,
    RunResult,
    Up,
    collect,
    wait_drained,
    write_manifests,
    write_replay,
)

SESSION_MS = (6 * 3600 + 15 * 60) * 1000
STAGE_INPUTS = {
    "feature-engine": (Topics.TICKS,),
    "risk-manager": (Topics.SIGNALS_GENERATED, Topics.ORDERS_SUBMITTED, Topics.ORDERS_FILLED,
                     Topics.ORDERS_REJECTED, Topics.TICKS, Topics.CONTROL),
    "trading-engine": (Topics.SIGNALS_VALIDATED, Topics.TICKS, Topics.CONTROL),
    "portfolio-manager": (Topics.ORDERS_FILLED, Topics.ORDERS_SUBMITTED, Topics.ORDERS_REJECTED,
                          Topics.SIGNALS_REJECTED, Topics.TICKS, Topics.CONTROL),
}


def topic_bytes(kafka: KafkaConfig, topic: str,
                largest: dict[str, int] | None = None) -> tuple[int, int]:
    """(messages, key + value bytes) of a whole topic; ``largest`` gets the largest value
    per kind of key (the part before ``/``: a changelog's record kinds)."""
    consumer = Consumer({**kafka.client_config(), "group.id": "alphaspt-bench-size",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0, 0
        parts = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                parts.append(TopicPartition(topic, p, low))
        consumer.assign(parts)
        pending = {tp.partition for tp in parts}
        count = size = 0
        while pending:
            for msg in consumer.consume(10_000, 0.5):
                if msg.error() is not None:
                    pending.discard(msg.partition() or 0)
                    continue
                count += 1
                size += len(msg.key() or b"") + len(msg.value() or b"")
                if largest is not None:
                    kind = (msg.key() or b"").split(b"/", 1)[0].decode(errors="replace")
                    largest[kind] = max(largest.get(kind, 0), len(msg.value() or b""))
        return count, size
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/full_session.py")
    parser.add_argument("--ticks", type=int, default=2_000_000)
    parser.add_argument("--broker", choices=("apache", "tansu"), default="apache")
    args = parser.parse_args()
    spacing = SESSION_MS / args.ticks
    with tempfile.TemporaryDirectory(prefix="alphaspt-session-") as tmp:
        root = Path(tmp)
        replay = root / "session.csv"
        t0 = time.monotonic()
        write_replay(replay, args.ticks, spacing_ms=spacing)
        print(f"replay: {args.ticks:,} ticks over 09:15-15:30 ({spacing:.1f} ms apart), "
              f"{replay.stat().st_size / 1e6:.0f} MB, written in {time.monotonic() - t0:.0f} s",
              flush=True)
        # 10 orders/s per strategy in event time. The account's caps (Kite's 400/min and
        # 5,000/day by default) are lifted: this measures the pipeline at a day's scale,
        # not the cap (with it, the day's approvals stop at 5,000).
        profile = {**PROFILE, "maxOrdersPerSecond": 10, "maxOrdersPerMinute": 600}
        write_manifests(root / "run" / "manifests", profile)
        up = Up(root / "run", args.broker, replay, None)
        up.env.update({"ALPHASPT_RISK__ACCOUNT_MAX_ORDERS_PER_MINUTE": "1000000",
                       "ALPHASPT_RISK__ACCOUNT_MAX_ORDERS_PER_DAY": "1000000"})
        memory: dict[str, list[tuple[float, int]]] = defaultdict(list)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(5.0):
                now = time.monotonic()
                for stage, proc in up.workers().items():
                    try:
                        memory[stage].append((now, proc.memory_info().rss))
                    except psutil.Error:
                        continue

        started = time.monotonic()
        up.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            wait_drained(up, args.ticks, timeout=7200)
            elapsed = time.monotonic() - started
            stop.set()
            result = RunResult(broker=args.broker, ticks=args.ticks)
            collect(up, result)
            kafka = up.kafka
            sizes = {t: topic_bytes(kafka, t) for t in {t for ts in STAGE_INPUTS.values()
                                                        for t in ts}}
            largest: dict[str, dict[str, int]] = {s: {} for s in STAGE_INPUTS}
            state = {s: topic_bytes(kafka, Topics.changelog(s, "default"), largest[s])
                     for s in STAGE_INPUTS}
            refused = Counter(Codec(RiskDecision).decode(m.value()).reason.value
                              for m in read_to_end(kafka, Topics.SIGNALS_REJECTED))
            broker = Counter(Codec(OrderRejected).decode(m.value()).reason
                             for m in read_to_end(kafka, Topics.ORDERS_REJECTED))
        finally:
            stop.set()
            code = up.stop()
    stalls = [line for line in up.lines if "no checkpoint" in line or "exited with" in line]
    print(f"orders {len(result.orders):,}  fills {len(result.fills):,}  in {elapsed:.0f} s "
          f"({args.ticks / elapsed:,.0f} ticks/s against the session's own "
          f"{args.ticks / (SESSION_MS / 1000):,.0f}/s)  stalls/exits reported: {len(stalls)}  "
          f"up exit {code}")
    print(f"  risk refusals {sum(refused.values()):,}: "
          + ", ".join(f"{r} {n:,}" for r, n in refused.most_common(5)))
    print(f"  broker refusals and cancellations {sum(broker.values()):,}: "
          + ", ".join(f"{r} {n:,}" for r, n in broker.most_common(5)))
    total_state = total_input = 0
    for stage, inputs in STAGE_INPUTS.items():
        in_bytes = sum(sizes[t][1] for t in inputs)
        records, st_bytes = state[stage]
        total_state += st_bytes
        total_input += in_bytes
        print(f"  {stage:18s} state {st_bytes / 1e6:8.2f} MB in {records:8,} records   "
              f"input {in_bytes / 1e6:8.2f} MB   state/input {st_bytes / max(1, in_bytes):.3f}")
        kinds = sorted(largest[stage].items(), key=lambda kv: -kv[1])[:4]
        print(f"  {'':18s} largest records: "
              + ", ".join(f"{k} {v / 1e3:,.1f} kB" for k, v in kinds))
    print(f"  {'all':18s} state {total_state / 1e6:8.2f} MB                     "
          f"input {total_input / 1e6:8.2f} MB   state/input "
          f"{total_state / max(1, total_input):.3f}")
    for stage, samples in sorted(memory.items()):
        if len(samples) < 3:
            continue
        warm = next(rss for t, rss in samples if t - started >= 0.2 * elapsed)
        end = samples[-1][1]
        peak = max(rss for _, rss in samples)
        print(f"  {stage:30s} rss warm-up {warm / 2**20:6.1f} MiB  end {end / 2**20:6.1f} MiB"
              f"  peak {peak / 2**20:6.1f} MiB  end/warm {end / warm:.2f}")
    return 0 if code == 0 and not stalls else 1


if __name__ == "__main__":
    sys.exit(main())
