"""examples/ticks/demo.csv: generated here, and checked to make both strategy styles trade.

Regenerate with ``python tests/unit/feeds/test_replay_demo.py > examples/ticks/demo.csv``.
Each symbol alternates range-bound stretches (noise with an occasional 5-sigma spike:
z-score excursions for mean reversion) and trends (EMA crossovers for momentum).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alphaspt.feeds.replay import ReplayFeed

DEMO = Path(__file__).resolve().parents[3] / "examples" / "ticks" / "demo.csv"
IST = timezone(timedelta(hours=5, minutes=30))
START = datetime(2025, 1, 6, 9, 15, tzinfo=IST)
PLAN: dict[str, tuple[float, list[tuple[str, int, float]]]] = {
    # symbol: (start price, [(kind, ticks, move in % over the segment)])
    "RELIANCE": (1400.0, [("range", 40, 0), ("trend", 50, 1.2), ("range", 30, 0),
                          ("trend", 50, -1.6), ("range", 30, 0)]),
    "INFY": (1550.0, [("trend", 45, -1.0), ("range", 40, 0), ("trend", 45, 1.4),
                      ("range", 35, 0), ("trend", 35, -0.8)]),
    "SBIN": (800.0, [("range", 50, 0), ("trend", 40, 1.5), ("range", 40, 0),
                     ("trend", 40, -1.2), ("range", 30, 0)]),
}
NOISE_BPS = 3.0
SPIKE_EVERY = 13


def _series(start: float, plan: list[tuple[str, int, float]], rng: random.Random) -> list[float]:
    level = x = start
    out = []
    for kind, n, move in plan:
        step = level * move / 100 / n
        for k in range(n):
            level += step
            sigma = level * NOISE_BPS / 1e4
            if kind == "range":
                x = level + 0.4 * (x - level) + rng.gauss(0, sigma)
                if k % SPIKE_EVERY == SPIKE_EVERY - 1:
                    x += rng.choice((-1, 1)) * 5 * sigma
            else:
                x = level + 0.3 * (x - level) + rng.gauss(0, sigma * 0.6)
            out.append(round(round(x / 0.05) * 0.05, 2))
    return out


def render() -> str:
    rng = random.Random(20250106)
    cols = {s: _series(p, plan, rng) for s, (p, plan) in PLAN.items()}
    lines = ["timestamp,symbol,price,quantity,volume"]
    volume = dict.fromkeys(cols, 0)
    for i in range(len(cols["RELIANCE"])):
        for j, s in enumerate(cols):
            ts = START + timedelta(seconds=i, milliseconds=250 * j)
            q = 1 + int(rng.expovariate(1 / 40))
            volume[s] += q
            lines.append(f"{ts.isoformat(timespec='milliseconds')},{s},{cols[s][i]:.2f},"
                         f"{q},{volume[s]}")
    return "\n".join(lines) + "\n"


def _ema(xs: list[float], n: int) -> list[float]:
    a, e, out = 2 / (n + 1), xs[0], []
    for x in xs:
        e = a * x + (1 - a) * e
        out.append(e)
    return out


def _crossovers(xs: list[float], fast: int, slow: int) -> int:
    f, s = _ema(xs, fast), _ema(xs, slow)
    return sum((f[i] - s[i]) * (f[i - 1] - s[i - 1]) < 0 for i in range(slow, len(xs)))


def _excursions(xs: list[float], window: int, threshold: float) -> int:
    count = 0
    for i in range(window, len(xs)):
        w = xs[i - window:i]
        mean = sum(w) / window
        sd = (sum((v - mean) ** 2 for v in w) / window) ** 0.5
        count += sd > 0 and abs(xs[i] - mean) / sd > threshold
    return count


def test_demo_file_is_the_generated_one_and_small() -> None:
    text = DEMO.read_text()
    assert text == render(), "regenerate: python tests/unit/feeds/test_replay_demo.py"
    assert len(text.encode()) < 60_000


@pytest.fixture(scope="module")
def prices() -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for tick in ReplayFeed(DEMO):
        out[tick.symbol].append(tick.price)
    return dict(out)


def test_demo_reads_cleanly(prices: dict[str, list[float]]) -> None:
    assert {s: len(v) for s, v in prices.items()} == {"RELIANCE": 200, "INFY": 200, "SBIN": 200}


@pytest.mark.parametrize(("fast", "slow"), [(5, 20), (10, 30)])
def test_demo_trends_make_ema_crossovers(
    prices: dict[str, list[float]], fast: int, slow: int
) -> None:
    for symbol, xs in prices.items():
        assert _crossovers(xs, fast, slow) >= 2, symbol


@pytest.mark.parametrize(("window", "threshold"), [(20, 2.0), (30, 2.0), (20, 2.5)])
def test_demo_ranges_make_zscore_excursions(
    prices: dict[str, list[float]], window: int, threshold: float
) -> None:
    for symbol, xs in prices.items():
        assert _excursions(xs, window, threshold) >= 5, symbol


if __name__ == "__main__":
    print(render(), end="")
