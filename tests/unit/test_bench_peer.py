"""The quixstreams peer computes what AlphasPT computes, and partial bench runs merge.

The peer (``bench/peer_quix.py``) re-expresses the feature definitions and the momentum
rule for quixstreams; a throughput ratio against it means something only if it does the
same work. Its two stateful functions are fed here with a dict-backed stand-in for
quixstreams' ``State`` (JSON round trip on every set, as the state store does) and compared
with :class:`FeatureCalculator` and :class:`MomentumStrategy` on the bench's own ticks.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from alphaspt.strategies import FeatureCalculator
from alphaspt.strategies.momentum import MomentumParams, MomentumStrategy
from bench.__main__ import merged
from bench.peer_quix import features, momentum
from bench.throughput import ticks


class JsonState:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)


def test_peer_features_and_signals_equal_alphaspts() -> None:
    params = {"quantity": 10, "threshold": 0.0005, "allow_short": True, "warmup": 26}
    calc = FeatureCalculator()
    strategy = MomentumStrategy("peer-test", MomentumParams(**params))
    decide = momentum({"strategy": "peer-test", **params})
    states: dict[str, JsonState] = {}
    compared = signals = 0
    sides: set[str] = set()
    for tick in [*ticks(3000), *list(ticks(3000))[100:110]]:  # with redeliveries at the end
        state = states.setdefault(tick.symbol, JsonState())
        ours = calc.update(tick)
        theirs = features(msgspec.to_builtins(tick), state)  # type: ignore[arg-type]
        if ours is None:
            assert theirs is None
            continue
        assert theirs is not None
        expected = msgspec.to_builtins(ours)
        for field, value in expected.items():
            if field == "ingest_ts":
                continue
            if isinstance(value, float):
                assert abs(theirs[field] - value) <= 1e-9 * max(abs(value), 1e-6), field
            else:
                assert theirs[field] == value, field
        compared += 1
        wanted = [msgspec.to_builtins(s) for s in strategy.on_features(ours)]
        signal = decide(theirs, state)  # type: ignore[arg-type]
        if not wanted:
            assert signal is None
            continue
        assert signal is not None
        assert {k: v for k, v in signal.items() if k != "ingest_ts"} == {
            k: v for k, v in wanted[0].items() if k != "ingest_ts"}
        sides.add(signal["side"])
        signals += len(wanted)
    assert compared == 2995
    assert signals >= 10 and sides == {"BUY", "SELL"}  # crossovers both ways compared


def test_partial_run_replaces_only_its_sections() -> None:
    old = {"date": "d0", "commit": "c0", "broker": "apache",
           "sections": ["throughput", "latency"],
           "figures": [{"name": "throughput bare", "value": 1.0},
                       {"name": "tick->order p99", "value": 2.0, "section": "latency"},
                       {"name": "quixstreams peer", "value": 3.0, "section": "peer"}]}
    run = {"date": "d1", "commit": "c1", "broker": "apache", "quick": True}
    new = {**run, "sections": ["peer"], "runs": {"peer": run},
           "figures": [{"name": "quixstreams peer", "value": 4.0, "section": "peer"}]}
    doc = merged(old, new)
    assert [f["value"] for f in doc["figures"]] == [1.0, 2.0, 4.0]
    assert doc["sections"] == ["throughput", "peer", "latency"]
    assert doc["runs"]["peer"] == run
    assert doc["runs"]["throughput"]["commit"] == "c0"
