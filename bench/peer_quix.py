"""The quixstreams peer of ``python -m bench --only peer``: features + momentum in quixstreams.

Runs in a venv of its own (``bench/requirements-quix.txt``, created by
:func:`bench.harness.venv_python`): quixstreams pins pydantic < 2.14, which AlphasPT's
dependencies do not allow. It therefore imports nothing from ``alphaspt``; only
:mod:`bench.harness` (standard library only) for the core pinning and the message
:class:`~bench.harness.Window`, so it is counted and timed exactly like AlphasPT's candidates.

One quixstreams ``Application`` (at-least-once, changelog topics, a commit every 0.2 s
like AlphasPT's stages) reads the JSON ``Tick`` events of ``market.ticks`` (keyed by
symbol, so quixstreams' per-key state store holds one state per symbol) and

1. computes the features of ``alphaspt.strategies.features`` with the same definitions,
   written the way a quixstreams user writes them (a stateful ``apply`` keeping the
   symbol's state as one JSON value): dedup of the last 64 tick ids and stale ticks,
   EMA fast/slow (spans 12/26, seeded with the first price), population mean/std and
   z-score of the last 20 prices (two passes), session VWAP per IST day from the volume
   increase, sample standard deviation of the last 20 log returns; the first tick of a
   symbol only seeds it. Each ``Features`` event goes to ``features_topic``;
2. applies the momentum strategy of ``alphaspt.strategies.momentum`` (EMA crossover with a
   relative band, act only on a regime change, warm-up of 26 events per symbol, target
   ``+quantity`` / ``-quantity`` or flat) in a second stateful ``apply`` and sends each
   ``Signal`` to ``signals_topic``.

``python -m bench.peer_quix '<json>'`` prints one JSON line: the window's result plus the
number of features and signals produced. quixstreams is imported only there, so
:func:`features` and :func:`momentum` also import without it (``tests/unit/test_bench_peer.py``
checks them against AlphasPT's own calculator and strategy).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
import time
import uuid
from typing import TYPE_CHECKING, Any

from bench.harness import Window, pin

if TYPE_CHECKING:  # quixstreams is imported where it runs, so the formulas import anywhere
    from quixstreams import State

ALPHA_FAST = 2.0 / (12 + 1)
ALPHA_SLOW = 2.0 / (26 + 1)
WINDOW = 20
VOL_WINDOW = 20
RECENT_IDS = 64
ZERO_STD_RTOL = 1e-12
IST_OFFSET_S = 19_800


def digest(*parts: str) -> str:
    """The deterministic id AlphasPT gives derived events: blake2b-96 of the joined parts."""
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


def rolling(values: list[float]) -> tuple[float, float]:
    """(mean, sum of squared deviations from it), two passes."""
    mean = sum(values) / len(values)
    return mean, sum((v - mean) * (v - mean) for v in values)


def features(tick: dict[str, Any], state: State) -> dict[str, Any] | None:
    price = float(tick["price"])
    if not math.isfinite(price) or price <= 0 or tick["quantity"] < 0 or tick["volume"] < 0:
        raise ValueError(f"{tick['symbol']}: invalid tick {tick['event_id']}")
    ts, volume, quantity = tick["exchange_ts"], tick["volume"], tick["quantity"]
    day = (ts // 1_000_000_000 + IST_OFFSET_S) // 86_400
    s = state.get("features")
    if s is None:
        state.set("features", {
            "count": 1, "last_price": price, "last_ts": ts, "ema_fast": price,
            "ema_slow": price, "prices": [price], "log_returns": [], "day": day,
            "pv": price * quantity, "qty": quantity, "volume": volume,
            "ids": [tick["event_id"]]})
        return None
    if tick["event_id"] in s["ids"] or ts < s["last_ts"]:
        return None
    prev = s["last_price"]
    s["count"] += 1
    s["last_price"] = price
    s["last_ts"] = ts
    s["ids"] = [*s["ids"][-(RECENT_IDS - 1):], tick["event_id"]]
    s["ema_fast"] += ALPHA_FAST * (price - s["ema_fast"])
    s["ema_slow"] += ALPHA_SLOW * (price - s["ema_slow"])
    prices = s["prices"] = [*s["prices"][-(WINDOW - 1):], price]
    returns = s["log_returns"] = [*s["log_returns"][-(VOL_WINDOW - 1):], math.log(price / prev)]
    if day != s["day"]:
        s.update(day=day, pv=0.0, qty=0, volume=0)
    traded = volume - s["volume"] if volume > 0 and 0 < s["volume"] <= volume else quantity
    if volume > 0:
        s["volume"] = volume
    s["pv"] += price * traded
    s["qty"] += traded
    state.set("features", s)

    mean, ss = rolling(prices)
    std = math.sqrt(ss / len(prices))
    if std <= ZERO_STD_RTOL * abs(mean):
        std = zscore = 0.0
    else:
        zscore = (price - mean) / std
    volatility = math.sqrt(rolling(returns)[1] / (len(returns) - 1)) if len(returns) >= 2 \
        else 0.0
    return {
        "event_id": digest("features", tick["event_id"]), "exchange_ts": ts,
        "ingest_ts": time.time_ns(), "v": 1, "symbol": tick["symbol"], "price": price,
        "tick_id": tick["event_id"], "count": s["count"], "ret": price / prev - 1.0,
        "ema_fast": s["ema_fast"], "ema_slow": s["ema_slow"], "mean": mean, "std": std,
        "zscore": zscore, "vwap": s["pv"] / s["qty"] if s["qty"] > 0 else price,
        "volatility": volatility,
    }


def momentum(params: dict[str, Any]) -> Any:
    name, quantity, threshold = params["strategy"], params["quantity"], params["threshold"]
    allow_short, warmup = params["allow_short"], params["warmup"]

    def decide(f: dict[str, Any], state: State) -> dict[str, Any] | None:
        m = state.get("momentum") or {"seen": 0, "regime": 0, "target": 0}
        m["seen"] += 1
        current = m["target"]
        if f["ema_fast"] > f["ema_slow"] * (1 + threshold):
            regime = 1
        elif f["ema_fast"] < f["ema_slow"] * (1 - threshold):
            regime = -1
        else:
            regime = 0
        wanted = None
        if regime != 0 and regime != m["regime"]:
            m["regime"] = regime
            wanted = quantity if regime > 0 else (-quantity if allow_short else 0)
        signal = None
        if m["seen"] > warmup and wanted is not None and wanted != current:
            side = "BUY" if wanted > current else "SELL"
            m["target"] = wanted
            signal = {
                "event_id": digest(name, f["symbol"], f["tick_id"], side),
                "exchange_ts": f["exchange_ts"], "ingest_ts": time.time_ns(), "v": 1,
                "strategy": name, "symbol": f["symbol"], "side": side,
                "quantity": abs(wanted - current), "order_type": "MARKET",
                "limit_price": None, "ref_price": f["price"], "product": "MIS",
                "reason": f"ema_fast {f['ema_fast']:.4f} crossed "
                          f"{'above' if side == 'BUY' else 'below'} ema_slow "
                          f"{f['ema_slow']:.4f}; target {current} -> {wanted}"}
        state.set("momentum", m)
        return signal

    return decide


def main() -> None:
    args = json.loads(sys.argv[1])
    pin(args.get("core"))
    topic = args["topic"]
    window = Window(topic, {int(p): o for p, o in args["ends"][topic].items()})
    with tempfile.TemporaryDirectory(prefix="bench-quix-state-") as state_dir:
        result = run(args, window, state_dir)
    print(json.dumps(result))


def run(args: dict[str, Any], window: Window, state_dir: str) -> dict[str, Any]:
    from quixstreams import Application, message_context
    from quixstreams.models.topics import TopicConfig

    topic = args["topic"]
    tag = uuid.uuid4().hex[:8]
    app = Application(
        broker_address=args["bootstrap"], consumer_group=f"bench-quix-{tag}",
        auto_offset_reset="earliest", processing_guarantee="at-least-once",
        commit_interval=0.2, state_dir=state_dir,
        producer_extra_config={"acks": "all", "enable.idempotence": True, "linger.ms": 1},
        loglevel="WARNING")
    out = TopicConfig(num_partitions=args["partitions"], replication_factor=1)
    counts = {"features": 0, "signals": 0}

    def see(_: Any) -> None:
        ctx = message_context()
        if window.see(ctx.topic, ctx.partition, ctx.offset):
            app.stop()

    def produced(kind: str) -> Any:
        def count(_: Any) -> None:
            counts[kind] += 1
        return count

    sdf = app.dataframe(app.topic(topic, key_deserializer="str", value_deserializer="json"))
    sdf = sdf.update(see)
    sdf = sdf.apply(features, stateful=True).filter(lambda f: f is not None)
    sdf = sdf.update(produced("features")).to_topic(app.topic(
        args["features_topic"], key_serializer="str", value_serializer="json", config=out))
    sdf = sdf.apply(momentum(args["momentum"]), stateful=True).filter(lambda s: s is not None)
    sdf.update(produced("signals")).to_topic(app.topic(
        args["signals_topic"], key_serializer="str", value_serializer="json", config=out))
    app.run()  # returns after the final checkpoint (flush, changelog, offsets)
    return {**window.result(), **counts}


if __name__ == "__main__":
    main()
