"""The feature engine's per-message Python path without a broker, beside its floor, and
optionally beside another commit's, interleaved in one run.

``python -m bench.stage_path [--ticks N] [--rounds R] [--against REF]``

Each candidate runs in its own process (pinned like the throughput candidates) over the
same ``N`` ticks as :mod:`bench.throughput` fills ``market.ticks`` with:

- ``floor``: decode each message and encode one Features-sized event: the codec alone;
- ``feature-engine``: :meth:`StreamProcessor._handle_batch` and ``_send`` of the real
  :class:`~alphaspt.workers.feature_engine.FeatureEngine` over batches of 2,000 messages,
  producing into a client that drops them (no Kafka: what is measured is this codebase's
  own per-message cost, which the throughput section mixes with the client's and the
  broker's);
- ``feature-engine@REF`` (``--against``): the same code of a git ref, from a temporary
  worktree, so a change is measured beside what it changed.

Prints the CPU microseconds per message of each (min and median of the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import ROOT, cores, interleave, pin, summary


class _Message:
    """What ``_handle_batch`` reads of a confluent-kafka message."""

    __slots__ = ("_key", "_offset", "_topic", "_value")

    def __init__(self, topic: str, value: bytes, offset: int, key: bytes) -> None:
        self._topic, self._value, self._offset, self._key = topic, value, offset, key

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key


class _DroppingProducer:
    def produce(self, topic: str, value: bytes, key: object = None) -> None:
        pass

    def poll(self, timeout: float) -> int:
        return 0


def child(candidate: str, n: int) -> dict[str, Any]:
    """Run in the checkout to measure (its ``alphaspt`` on ``sys.path``)."""
    from alphaspt.core.config import Settings
    from alphaspt.core.events import Codec, Features, Tick, Topics, encode
    from alphaspt.workers.common import stage_config
    from alphaspt.workers.feature_engine import FeatureEngine
    from bench.throughput import ticks

    messages = [_Message(Topics.TICKS, encode(t), i, t.symbol.encode())
                for i, t in enumerate(ticks(n))]
    started = time.process_time()
    if candidate == "floor":
        codec = Codec(Tick)
        out = Features(event_id="f" * 24, exchange_ts=0, symbol="RELIANCE", price=1.0,
                       tick_id="t" * 24, count=1, ret=0.0, ema_fast=1.0, ema_slow=1.0,
                       mean=1.0, std=0.1, zscore=0.5, vwap=1.0, volatility=0.2)
        for m in messages:
            codec.decode(m.value())
            encode(out)
    else:
        settings = Settings(clock="event")
        stage = FeatureEngine(settings, stage_config(settings, "feature-engine"))
        stage._producer = _DroppingProducer()  # type: ignore[assignment]
        for i in range(0, n, 2000):
            stage._handle_batch(messages[i:i + 2000])  # type: ignore[arg-type]
            stage._send()
    return {"cpu_us_per_msg": (time.process_time() - started) / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_path")
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="a git ref to measure beside the working tree")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        pin(spec.get("core"))
        print(json.dumps(child(spec["candidate"], spec["n"])))
        return
    usable = cores()
    core = usable[-1] if len(usable) > 1 else None
    trees = {"floor": ROOT, "feature-engine": ROOT}
    with tempfile.TemporaryDirectory(prefix="alphaspt-stage-path-") as tmp:
        if args.against:
            tree = Path(tmp) / "against"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(tree), args.against], check=True)
            trees[f"feature-engine@{args.against}"] = tree
        try:
            def run(candidate: str) -> dict[str, Any]:
                spec = {"candidate": candidate.split("@")[0], "n": args.ticks, "core": core}
                # This file as the child, with the measured tree's packages first.
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                    cwd=trees[candidate], capture_output=True, text=True, check=False,
                    env={**os.environ, "PYTHONPATH": str(trees[candidate])})
                if done.returncode != 0:
                    raise RuntimeError(f"{candidate}: {done.stderr.strip()[-2000:]}")
                return dict(json.loads(done.stdout.strip().splitlines()[-1]))

            samples = interleave(list(trees), args.rounds, run)
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(Path(tmp) / "against")], check=False)
    print(f"\nCPU us per message, {args.ticks:,} ticks, {args.rounds} interleaved rounds:")
    for candidate, runs in samples.items():
        low, median = summary([r["cpu_us_per_msg"] for r in runs])
        print(f"  {candidate:<40} min {low:6.2f}  median {median:6.2f}")


if __name__ == "__main__":
    main()
