"""Per-event encode+decode cost of a Tick with three serialisation libraries.

Baseline, measured in the same run: the standard library's ``json`` on a plain dict (no
types, no validation). Each candidate prints its cost per event and the ratio to the
baseline. msgspec is what ``alphaspt.core.events`` uses.

    python bench/bench_serialization.py [--n 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable

import msgspec
import orjson
import pydantic

from alphaspt.core.events import Codec, Tick, encode


class PydTick(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)
    event_id: str
    exchange_ts: int
    ingest_ts: int
    v: int = 1
    symbol: str
    exchange: str = "NSE"
    price: float
    quantity: int = 0
    volume: int = 0
    bid: float | None = None
    ask: float | None = None


@dataclasses.dataclass(frozen=True)
class DcTick:
    event_id: str
    exchange_ts: int
    ingest_ts: int
    v: int
    symbol: str
    exchange: str
    price: float
    quantity: int
    volume: int
    bid: float | None
    ask: float | None


FIELDS = {
    "event_id": "9f3c2a1b7d6e5f4a3b2c1d0e",
    "exchange_ts": 1_764_000_000_000_000_000,
    "ingest_ts": 1_764_000_000_000_100_000,
    "v": 1,
    "symbol": "RELIANCE",
    "exchange": "NSE",
    "price": 2874.35,
    "quantity": 12,
    "volume": 1_234_567,
    "bid": 2874.3,
    "ask": 2874.4,
}


def timed(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 5000)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n

    as_dict = dict(FIELDS)
    tick = Tick(**FIELDS)  # type: ignore[arg-type]
    codec = Codec(Tick)
    pyd = PydTick(**FIELDS)  # type: ignore[arg-type]
    dc = DcTick(**FIELDS)  # type: ignore[arg-type]

    cases: dict[str, Callable[[], object]] = {
        "stdlib json, dict (baseline)": lambda: json.loads(json.dumps(as_dict)),
        "msgspec Struct (validating)": lambda: codec.decode(encode(tick)),
        "pydantic v2 model (validating)": lambda: PydTick.model_validate_json(
            pyd.model_dump_json()
        ),
        "orjson + dataclass (no validation)": lambda: DcTick(
            **orjson.loads(orjson.dumps(dc))
        ),
    }
    assert codec.decode(encode(tick)) == tick
    assert msgspec.json.decode(encode(tick)) == json.loads(json.dumps(as_dict))

    results = {name: timed(fn, n) for name, fn in cases.items()}
    baseline = results["stdlib json, dict (baseline)"]
    print(f"Tick encode+decode, best of 3 x {n} events")
    for name, cost in results.items():
        print(f"  {name:38s} {cost * 1e6:7.3f} us/event   ratio to baseline {cost / baseline:5.2f}")


if __name__ == "__main__":
    main()
