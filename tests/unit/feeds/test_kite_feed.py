"""Kite feed logic without servers: the connection plan and its limits, market hours, the
instrument cache's day, ticks from kiteconnect's dicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alphaspt.exceptions import InvalidConfiguration
from alphaspt.feeds.kite import (
    InstrumentCache,
    KiteInstrument,
    dump_day,
    nse_market_hours,
    plan,
    to_tick,
)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_plan_fills_connections_of_3000_and_refuses_a_fourth() -> None:
    assert plan([]) == []
    assert [len(c) for c in plan(list(range(1, 3001)))] == [3000]
    assert [len(c) for c in plan(list(range(1, 3002)))] == [3000, 1]
    assert [len(c) for c in plan(list(range(1, 9001)))] == [3000, 3000, 3000]
    assert plan([5, 5, 7]) == [[5, 7]]  # a duplicate counts once
    with pytest.raises(InvalidConfiguration, match="9001 instruments exceed Kite's ticker "
                       "limit of 3 connections x 3000 instruments = 9000"):
        plan(list(range(1, 9002)))


@pytest.mark.parametrize(("when", "open_"), [
    ("2026-12-02T09:00:00+05:30", True),  # Wednesday, pre-open
    ("2026-12-02T15:29:59+05:30", True),
    ("2026-12-02T15:30:00+05:30", False),
    ("2026-12-02T08:59:59+05:30", False),
    ("2026-12-05T11:00:00+05:30", False),  # Saturday
    ("2026-12-02T04:00:00+00:00", True),  # 09:30 IST
])
def test_market_hours_are_ist(when: str, open_: bool) -> None:
    assert nse_market_hours(epoch(when)) is open_


def test_the_dump_day_starts_at_0830_ist() -> None:
    assert dump_day(epoch("2026-12-02T08:29:00+05:30")) == "2026-12-01"
    assert dump_day(epoch("2026-12-02T08:30:00+05:30")) == "2026-12-02"
    assert dump_day(epoch("2026-12-02T23:59:00+05:30")) == "2026-12-02"


def records(n_tokens: int) -> list[dict[str, Any]]:
    return [{"instrument_token": n_tokens, "tradingsymbol": "INFY", "segment": "NSE",
             "tick_size": 0.05, "lot_size": 1, "exchange": "NSE"},
            {"instrument_token": 9, "tradingsymbol": "INFY", "segment": "BSE",
             "tick_size": 0.05, "lot_size": 1, "exchange": "BSE"}]


def test_cache_fetches_once_a_day_and_keeps_only_the_newest(tmp_path: Path) -> None:
    now = [epoch("2026-12-02T09:00:00+05:30")]
    calls: list[str] = []

    def fetch(exchange: str) -> list[dict[str, Any]]:
        calls.append(exchange)
        return records(408065 if len(calls) == 1 else 999)

    cache = InstrumentCache(tmp_path, fetch, clock=lambda: now[0])
    found, missing = cache.lookup(["NSE:INFY", "NSE:NOPE"])
    assert found["NSE:INFY"].instrument_token == 408065 and missing == ["NSE:NOPE"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instruments-NSE-2026-12-02.csv"]
    # the same day, a new process: read from disk, not fetched again
    again = InstrumentCache(tmp_path, fetch, clock=lambda: now[0])
    assert again.lookup(["NSE:INFY"])[0]["NSE:INFY"] == KiteInstrument(
        408065, "NSE", "INFY", "NSE", 0.05, 1)
    assert calls == ["NSE"]
    now[0] = epoch("2026-12-03T08:45:00+05:30")  # the next dump: tokens may be reused
    assert cache.lookup(["NSE:INFY"])[0]["NSE:INFY"].instrument_token == 999
    assert calls == ["NSE", "NSE"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instruments-NSE-2026-12-03.csv"]


def test_a_corrupt_cache_file_is_fetched_again(tmp_path: Path) -> None:
    now = epoch("2026-12-02T10:00:00+05:30")
    (tmp_path / "instruments-NSE-2026-12-02.csv").write_text("garbage\nx\n")
    calls: list[str] = []
    cache = InstrumentCache(tmp_path, lambda ex: calls.append(ex) or records(1),
                            clock=lambda: now)
    assert cache.lookup(["NSE:INFY"])[0]["NSE:INFY"].instrument_token == 1
    assert calls == ["NSE"]


INFY = KiteInstrument(408065, "NSE", "INFY", "NSE", 0.05, 1)


def test_full_tick_uses_the_exchange_timestamp_and_best_depth() -> None:
    stamp = 1625461887
    raw = {"instrument_token": 408065, "mode": "full", "last_price": 1573.7,
           "last_traded_quantity": 7, "volume_traded": 1192471, "total_buy_quantity": 256443,
           "total_sell_quantity": 363009, "exchange_timestamp": datetime.fromtimestamp(stamp),
           "depth": {"buy": [{"price": 0.0, "quantity": 0, "orders": 0},
                             {"price": 1573.4, "quantity": 5, "orders": 1}],
                     "sell": [{"price": 1573.75, "quantity": 44, "orders": 3}]},
           "received_ns": 1_700_000_000_000_000_000}
    tick = to_tick(raw, INFY)
    assert tick.exchange_ts == stamp * 10**9
    assert datetime.fromtimestamp(stamp, UTC).isoformat() == "2021-07-05T05:11:27+00:00"
    assert (tick.symbol, tick.exchange, tick.price, tick.quantity, tick.volume) == (
        "INFY", "NSE", 1573.7, 7, 1192471)
    assert (tick.bid, tick.ask) == (1573.4, 1573.75)
    assert tick.ingest_ts == raw["received_ns"]
    # the same market state re-sent after a reconnect: the same id; a new trade: another
    assert to_tick({**raw, "received_ns": raw["received_ns"] + 5}, INFY).event_id == \
        tick.event_id
    assert to_tick({**raw, "volume_traded": 1192472}, INFY).event_id != tick.event_id


def test_quote_tick_has_no_exchange_time_so_receipt_time() -> None:
    raw = {"instrument_token": 408065, "mode": "quote", "last_price": 1573.15,
           "last_traded_quantity": 1, "volume_traded": 10, "received_ns": 1_764_650_000 * 10**9}
    tick = to_tick(raw, INFY)
    assert tick.exchange_ts == raw["received_ns"] and tick.bid is None and tick.ask is None
