"""Replay feed: parsing, deterministic ids, clear errors, pacing without sleeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alphaspt.core.events import stable_id
from alphaspt.feeds.replay import ReplayFeed, ReplayFormatError, parse_timestamp

# 2025-01-06T09:15:00+05:30 == 03:45:00Z
T0_NS = 1_736_135_100_000_000_000


def write(tmp_path: Path, text: str, name: str = "day.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_timestamps_iso_with_offset_and_epoch_ms() -> None:
    assert parse_timestamp("2025-01-06T09:15:00+05:30") == T0_NS
    assert parse_timestamp("2025-01-06T03:45:00Z") == T0_NS
    assert parse_timestamp("2025-01-06T09:15:00.123456+05:30") == T0_NS + 123_456_000
    assert parse_timestamp("1736135100250") == T0_NS + 250_000_000
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_timestamp("2025-01-06T09:15:00")
    with pytest.raises(ValueError, match="neither"):
        parse_timestamp("yesterday")


def test_rows_become_ticks_with_stable_ids(tmp_path: Path, fake_time: Any) -> None:
    path = write(tmp_path, (
        "timestamp,symbol,price,quantity\n"
        "2025-01-06T09:15:00+05:30,RELIANCE,1400.05,10\n"
        "\n"
        "1736135101000,TCS,3500,5\n"
        "2025-01-06T09:15:02+05:30,RELIANCE,1400.10,7\n"
    ))
    ticks = list(ReplayFeed(path, clock=fake_time.clock))
    assert [(t.symbol, t.price, t.quantity, t.volume) for t in ticks] == [
        ("RELIANCE", 1400.05, 10, 10), ("TCS", 3500.0, 5, 5), ("RELIANCE", 1400.1, 7, 17)]
    assert [t.exchange_ts for t in ticks] == [T0_NS, T0_NS + 10**9, T0_NS + 2 * 10**9]
    # ids name the physical line (the blank line 3 counts)
    assert [t.event_id for t in ticks] == [stable_id("replay", "day", n) for n in (2, 4, 5)]
    assert ticks[0].exchange == "NSE"
    assert ticks[0].ingest_ts < ticks[1].ingest_ts  # from the injected clock
    again = list(ReplayFeed(path, clock=fake_time.clock))
    assert [t.event_id for t in again] == [t.event_id for t in ticks]


def test_volume_column_is_taken_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, "Timestamp,Symbol,Price,Quantity,Volume\n"
                           "1736135100000,SBIN,800.00,3,1000\n")
    (tick,) = ReplayFeed(path)
    assert (tick.quantity, tick.volume) == (3, 1000)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2025-01-06T09:15:01,SBIN,800,1", "no UTC offset"),
        ("soon,SBIN,800,1", "neither ISO-8601"),
        ("1736135101000,,800,1", "invalid symbol"),
        ("1736135101000,SBIN,abc,1", "price 'abc' is not a number"),
        ("1736135101000,SBIN,0,1", "price must be positive"),
        ("1736135101000,SBIN,nan,1", "price must be positive"),
        ("1736135101000,SBIN,800,-1", "quantity must not be negative"),
        ("1736135101000,SBIN,800,1.5", "quantity '1.5' is not an integer"),
        ("1736135101000,SBIN,800", "expected 4 fields, got 3"),
        ("1736135099000,SBIN,800,1", "earlier than the row before"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path, f"timestamp,symbol,price,quantity\n1736135100000,SBIN,800,1\n{row}\n")
    feed = iter(ReplayFeed(path))
    next(feed)
    with pytest.raises(ReplayFormatError) as info:
        next(feed)
    assert info.value.line == 3
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}:3: ")
    assert reason in str(info.value)


def test_on_error_reports_and_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "timestamp,symbol,price,quantity\n"
        "1736135100000,SBIN,800,1\n"
        "1736135100500,SBIN,oops,1\n"
        "1736135101000,SBIN,801,2\n"
    ))
    errors: list[ReplayFormatError] = []
    ticks = list(ReplayFeed(path, on_error=errors.append))
    assert [t.price for t in ticks] == [800.0, 801.0]
    assert ticks[1].volume == 3  # the bad row contributes nothing
    assert [(e.line, e.row) for e in errors] == [(3, ["1736135100500", "SBIN", "oops", "1"])]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty file"), ("time,sym,px,qty\n", "header must be"),
     ("timestamp,symbol,price\n", "header must be")],
)
def test_bad_files_always_raise(tmp_path: Path, text: str, reason: str) -> None:
    feed = ReplayFeed(write(tmp_path, text), on_error=lambda e: None)
    with pytest.raises(ReplayFormatError, match=reason):
        list(feed)
    with pytest.raises(ReplayFormatError, match="cannot open"):
        list(ReplayFeed(tmp_path / "missing.csv"))


def test_pacing_scales_real_time_and_absorbs_processing_time(
    tmp_path: Path, fake_time: Any
) -> None:
    path = write(tmp_path, (
        "timestamp,symbol,price,quantity\n"
        "1736135100000,SBIN,800,1\n"
        "1736135101000,SBIN,801,1\n"  # +1 s
        "1736135101000,SBIN,802,1\n"  # same time: no wait
        "1736135104000,SBIN,803,1\n"  # +3 s
    ))
    feed = ReplayFeed(path, speed=2.0, sleep=fake_time.sleep, monotonic=fake_time.monotonic)
    seen = []
    for tick in feed:
        seen.append(tick.price)
        if tick.price == 801.0:
            fake_time.now += 0.2  # the consumer took 0.2 s: the next wait is shorter
    assert seen == [800.0, 801.0, 802.0, 803.0]
    # due times at speed 2: 0.5 s and 2.0 s after the start
    assert fake_time.sleeps == pytest.approx([0.5, 1.3])


def test_no_speed_never_sleeps(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,symbol,price,quantity\n"
                           "1736135100000,SBIN,800,1\n1736135200000,SBIN,801,1\n")

    def no_sleep(seconds: float) -> None:
        raise AssertionError("slept")

    assert len(list(ReplayFeed(path, None, sleep=no_sleep))) == 2
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(path, 0.0)


def test_ticks_due_within_the_pacing_quantum_go_out_without_a_sleep(
    tmp_path: Path, fake_time: Any
) -> None:
    # 1,000 ticks/s: 1 ms apart, then one 50 ms later.
    rows = "".join(f"{1736135100000 + i},SBIN,800,1\n" for i in range(4))
    path = write(tmp_path, "timestamp,symbol,price,quantity\n" + rows
                 + "1736135100053,SBIN,801,1\n")
    feed = ReplayFeed(path, speed=1.0, sleep=fake_time.sleep, monotonic=fake_time.monotonic)
    assert len(list(feed)) == 5
    # Only the last one is waited for, to its due time (53 ms after the first).
    assert fake_time.sleeps == pytest.approx([0.053])
