"""The trading calendar against NSE's published holiday list, and the override file."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from alphaspt.exceptions import InvalidConfiguration
from alphaspt.market import CalendarOverrides, TradingCalendar, load_calendar
from alphaspt.market.calendar import ist_ns

NSE_2026_HOLIDAYS = {
    # NSE, "Trading holidays for the calendar year 2026" (equity segment), circular of
    # December 2025 (https://www.nseindia.com/resources/exchange-communication-holidays),
    # weekday holidays only, plus the special holiday of 15 January 2026 (municipal
    # corporation elections in Maharashtra, declared in January 2026).
    date(2026, 1, 15): "Municipal Corporation Elections in Maharashtra",
    date(2026, 1, 26): "Republic Day",
    date(2026, 3, 3): "Holi",
    date(2026, 3, 26): "Shri Ram Navami",
    date(2026, 3, 31): "Shri Mahavir Jayanti",
    date(2026, 4, 3): "Good Friday",
    date(2026, 4, 14): "Dr. Baba Saheb Ambedkar Jayanti",
    date(2026, 5, 1): "Maharashtra Day",
    date(2026, 5, 28): "Bakri Id",
    date(2026, 6, 26): "Muharram",
    date(2026, 9, 14): "Ganesh Chaturthi",
    date(2026, 10, 2): "Mahatma Gandhi Jayanti",
    date(2026, 10, 20): "Dussehra",
    date(2026, 11, 10): "Diwali Balipratipada",
    date(2026, 11, 24): "Prakash Gurpurb Sri Guru Nanak Dev",
    date(2026, 12, 25): "Christmas",
}


@pytest.fixture(scope="module")
def nse() -> TradingCalendar:
    return load_calendar(start=date(2025, 1, 1))


def test_2026_holidays_match_nse_published_list(nse: TradingCalendar) -> None:
    day = date(2026, 1, 1)
    closed_weekdays = set()
    while day <= date(2026, 12, 31):
        if day.weekday() < 5 and not nse.is_trading_day(day):
            closed_weekdays.add(day)
        day = date.fromordinal(day.toordinal() + 1)
    assert closed_weekdays == set(NSE_2026_HOLIDAYS)


def test_session_hours_and_closed_days(nse: TradingCalendar) -> None:
    friday = date(2026, 1, 23)
    assert nse.check(ist_ns(friday, time(9, 15))) is None
    assert nse.check(ist_ns(friday, time(15, 29, 59))) is None
    assert "outside the session 09:15-15:30" in (nse.check(ist_ns(friday, time(15, 30))) or "")
    assert "outside the session" in (nse.check(ist_ns(friday, time(9, 14, 59))) or "")
    assert "a weekend" in (nse.check(ist_ns(date(2026, 1, 24), time(10))) or "")
    assert "an exchange holiday" in (nse.check(ist_ns(date(2026, 1, 26), time(10))) or "")
    assert nse.check(ist_ns(date(2026, 1, 27), time(10))) is None  # Tuesday


def test_beyond_the_calendar_is_closed(nse: TradingCalendar) -> None:
    message = nse.check(ist_ns(date(2031, 3, 4), time(10)))
    assert message is not None and "beyond the trading calendar" in message


def test_overrides_add_muhurat_session_and_late_holiday(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(
        "sessions:\n"
        "  - {date: 2025-10-21, open: \"13:45\", close: \"14:45\", reason: Muhurat trading}\n"
        "holidays:\n"
        "  - {date: 2026-01-27, reason: a late closure}\n")
    cal = load_calendar(start=date(2025, 1, 1), overrides=path)
    assert cal.check(ist_ns(date(2025, 10, 21), time(13, 45))) is None
    assert cal.check(ist_ns(date(2025, 10, 21), time(14, 45))) is not None
    assert cal.check(ist_ns(date(2025, 10, 21), time(10))) is not None
    assert "holiday" in (cal.check(ist_ns(date(2026, 1, 27), time(10))) or "")


def test_bad_override_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sessions:\n  - {date: 2025-10-21, open: 13:45}\n")  # YAML: 825 (int)
    with pytest.raises(InvalidConfiguration, match=r"sessions\.0\.open"):
        CalendarOverrides.load(path)
    with pytest.raises(InvalidConfiguration, match="No such file"):
        CalendarOverrides.load(tmp_path / "missing.yaml")


def test_shipped_override_example_loads() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "calendar" / "overrides.yaml"
    overrides = CalendarOverrides.load(example)
    assert any(s.date == date(2025, 10, 21) for s in overrides.sessions)


def test_latest_and_next_session() -> None:
    cal = TradingCalendar.from_table({
        date(2026, 1, 23): (time(9, 15), time(15, 30)),
        date(2026, 1, 27): (time(9, 15), time(15, 30)),
    })
    sat = ist_ns(date(2026, 1, 24), time(11))
    latest = cal.latest_session(sat)
    assert latest is not None and latest.date == date(2026, 1, 23)
    nxt = cal.next_session(latest.day)
    assert nxt is not None and nxt.date == date(2026, 1, 27)
    assert cal.next_session(nxt.day) is None
