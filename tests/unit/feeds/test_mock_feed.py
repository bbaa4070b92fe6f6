"""Mock feed: reproducible, on the tick grid, independent per symbol, injectable time."""

from __future__ import annotations

import math
import statistics
from datetime import date, time
from decimal import Decimal
from itertools import islice, pairwise
from typing import Any

import pytest
from pydantic import ValidationError

from alphaspt.core.events import stable_id
from alphaspt.feeds.mock import (
    START_PRICES,
    MockFeed,
    MockFeedConfig,
    SessionClock,
    default_start_price,
)
from alphaspt.market import TradingCalendar
from alphaspt.market.calendar import ist_ns


def counting_clock() -> Any:
    counter = iter(range(1, 10**9))
    return lambda: next(counter)


def feed(**overrides: Any) -> MockFeed:
    return MockFeed(MockFeedConfig(**overrides), clock=counting_clock(), sleep=lambda s: None)


def test_same_config_same_ticks_other_seed_other_prices() -> None:
    a = feed(symbols=("RELIANCE", "TCS"), seed=7).ticks(200)
    b = feed(symbols=("RELIANCE", "TCS"), seed=7).ticks(200)
    c = feed(symbols=("RELIANCE", "TCS"), seed=8).ticks(200)
    assert a == b
    assert [t.price for t in a] != [t.price for t in c]


def test_ticks_are_on_the_grid_with_ids_clock_and_volume() -> None:
    f = feed(symbols=("RELIANCE", "SBIN", "ZZUNKNOWN"), seed=3, volatility=0.002)
    ticks = f.ticks(300)
    assert [t.symbol for t in ticks[:4]] == ["RELIANCE", "SBIN", "ZZUNKNOWN", "RELIANCE"]
    assert [t.exchange_ts for t in ticks] == list(range(1, 301))
    volumes: dict[str, int] = {}
    seqs: dict[str, int] = {}
    for t in ticks:
        assert Decimal(repr(t.price)) % Decimal("0.05") == 0, t.price
        assert t.quantity >= 1
        volumes[t.symbol] = volumes.get(t.symbol, 0) + t.quantity
        assert t.volume == volumes[t.symbol]
        seqs[t.symbol] = seqs.get(t.symbol, 0) + 1
        assert t.event_id == stable_id("mock", 3, t.symbol, seqs[t.symbol])
        assert t.bid is not None
        assert t.ask is not None
        assert round(t.ask - t.bid, 2) == 0.1
    assert len({t.event_id for t in ticks}) == 300


def test_first_prints_are_the_start_prices() -> None:
    f = feed(symbols=("RELIANCE", "TCS", "NEWCO"), start_prices={"TCS": 3333.35})
    first = {t.symbol: t.price for t in f.ticks(3)}
    assert first == {"RELIANCE": START_PRICES["RELIANCE"], "TCS": 3333.35,
                     "NEWCO": default_start_price("NEWCO")}
    assert default_start_price("NEWCO") == default_start_price("NEWCO")
    assert 100.0 <= default_start_price("NEWCO") < 5000.0
    assert Decimal(repr(default_start_price("NEWCO"))) % Decimal("0.05") == 0


def test_volatility_is_what_was_asked() -> None:
    ticks = feed(symbols=("MARUTI",), volatility=0.001, seed=11).ticks(4001)
    rets = [math.log(b.price / a.price) for a, b in pairwise(ticks)]
    assert statistics.pstdev(rets) == pytest.approx(0.001, rel=0.1)
    assert abs(statistics.fmean(rets)) < 0.0001


def test_symbols_are_independent_and_resume_after_removal() -> None:
    alone = feed(symbols=("INFY",), seed=5).ticks(30)
    f = feed(symbols=("INFY", "ITC"), seed=5)
    mixed = f.ticks(20)  # 10 INFY, 10 ITC
    f.set_symbols(["ITC"])
    f.ticks(5)
    f.set_symbols(["LT", "INFY"])
    assert f.symbols == ("LT", "INFY")
    later = f.ticks(40)  # 20 LT, 20 INFY
    infy = [t for t in mixed + later if t.symbol == "INFY"]
    assert [(t.event_id, t.price, t.quantity, t.volume) for t in infy] == [
        (t.event_id, t.price, t.quantity, t.volume) for t in alone
    ]


def test_iteration_sleeps_between_rounds(fake_time: Any) -> None:
    f = MockFeed(MockFeedConfig(symbols=("A1", "B2", "C3"), interval_s=0.5),
                 clock=fake_time.clock, sleep=fake_time.sleep)
    got = list(islice(iter(f), 7))
    assert [t.symbol for t in got] == ["A1", "B2", "C3"] * 2 + ["A1"]
    assert fake_time.sleeps == [0.5, 0.5]
    f.set_symbols([])
    assert f.ticks(5) == []
    assert f.next_round() == []


def test_config_validation() -> None:
    assert MockFeedConfig(symbols=("TCS", "TCS", "INFY")).symbols == ("TCS", "INFY")
    with pytest.raises(ValidationError):
        MockFeedConfig(symbols=("TCS", " "))
    with pytest.raises(ValidationError):
        MockFeedConfig(start_prices={"TCS": -1.0})
    with pytest.raises(ValidationError):
        MockFeedConfig(volatility=-0.1)
    with pytest.raises(ValidationError):
        MockFeedConfig().seed = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="negative"):
        feed().ticks(-1)
    with pytest.raises(ValueError, match="invalid symbol"):
        feed().set_symbols(["OK", ""])


# -- the simulated exchange clock ---------------------------------------------------------------

def test_session_clock_runs_inside_sessions_from_the_latest_open() -> None:
    session = (time(9, 15), time(15, 30))
    cal = TradingCalendar.from_table({date(2026, 1, 23): session, date(2026, 1, 27): session})
    wall = [ist_ns(date(2026, 1, 25), time(3))]  # a Sunday night
    clock = SessionClock(cal, wall=lambda: wall[0])
    assert clock() == ist_ns(date(2026, 1, 23), time(9, 15))  # Friday's open
    assert cal.check(clock()) is None
    wall[0] += 6 * 3600 * 10**9  # six hours later: 15:15 on Friday
    assert clock() == ist_ns(date(2026, 1, 23), time(15, 15))
    wall[0] += 20 * 60 * 10**9  # 15 minutes past the close: Tuesday 09:20 (26th a holiday)
    assert clock() == ist_ns(date(2026, 1, 27), time(9, 20))
    wall[0] += 7 * 3600 * 10**9  # beyond the last session: just before its close
    assert clock() == ist_ns(date(2026, 1, 27), time(15, 30)) - 1
    # a restarted feed goes on after the newest tick it already sent
    resumed = SessionClock(cal, wall=lambda: 0, start_ns=ist_ns(date(2026, 1, 23), time(12)))
    assert resumed() == ist_ns(date(2026, 1, 23), time(12))


def test_per_symbol_tick_grid() -> None:
    feed = MockFeed(MockFeedConfig(symbols=("TATASTEEL",), volatility=0.01,
                                   tick_sizes={"TATASTEEL": 0.01}), clock=lambda: 1)
    prices = [t.price for t in feed.ticks(200)]
    assert all(abs(round(p * 100) - p * 100) < 1e-6 for p in prices)
    assert any(abs(round(p * 20) - p * 20) > 1e-6 for p in prices)  # not only 0.05 steps
