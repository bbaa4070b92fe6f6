"""NSE's trading calendar: which days are sessions and when each session opens and closes.

Source: the ``exchange_calendars`` library's ``XBOM`` calendar (BSE; NSE and BSE share the
equity trading holidays, and the library's 2026 list is NSE's published one, checked in
``tests/unit/market/test_calendar.py``), regular session 09:15-15:30 IST, plus an optional
override file (YAML) for special sessions such as Muhurat trading and for holidays the
exchange declares late::

    sessions:            # extra or changed sessions (IST)
      - {date: 2025-10-21, open: "13:45", close: "14:45", reason: Muhurat trading}
    holidays:            # days the exchange closed after the library was released
      - {date: 2026-01-15, reason: Municipal elections in Maharashtra}

A day beyond the library's range (it ships a year's holidays at a time) is *closed* unless
the override file names it as a session: trading on an unknown calendar fails closed.

The calendar is a plain table of sessions (one entry per trading day in the range, about 250
a year), built once at start-up; :meth:`TradingCalendar.check` is a dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Final, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from alphaspt.core.clock import IST_OFFSET_SECONDS, NS_PER_SECOND, ist_day, ist_day_start
from alphaspt.exceptions import InvalidConfiguration

NSE_OPEN: Final = time(9, 15)
NSE_CLOSE: Final = time(15, 30)
DEFAULT_CALENDAR: Final = "XBOM"
"""``exchange_calendars`` code covering NSE/BSE equities (there is no separate XNSE)."""
_EPOCH_DATE: Final = date(1970, 1, 1)
_IST_OFFSET: Final = timedelta(seconds=IST_OFFSET_SECONDS)


def day_number(d: date) -> int:
    """Days since 1970-01-01 (the unit of :func:`alphaspt.core.clock.ist_day`)."""
    return (d - _EPOCH_DATE).days


def day_date(day: int) -> date:
    return _EPOCH_DATE + timedelta(days=day)


def ist_ns(d: date, t: time) -> int:
    """Epoch nanoseconds of the IST wall time ``t`` on ``d``."""
    seconds = t.hour * 3600 + t.minute * 60 + t.second
    return ist_day_start(day_number(d)) + seconds * NS_PER_SECOND + t.microsecond * 1000


def ist_datetime(ts_ns: int) -> datetime:
    """An epoch-ns timestamp as a naive IST datetime (for messages and comparisons)."""
    return datetime(1970, 1, 1) + timedelta(microseconds=ts_ns // 1000) + _IST_OFFSET


class Session(NamedTuple):
    day: int
    """IST day (days since 1970-01-01)."""
    open_ns: int
    close_ns: int
    """Exclusive: an order at the close is outside the session."""

    @property
    def date(self) -> date:
        return day_date(self.day)


class _Override(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    date: date
    reason: str = ""


class OverrideSession(_Override):
    open: time = NSE_OPEN
    close: time = NSE_CLOSE

    @field_validator("open", "close", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        # unquoted 13:45 is YAML's sexagesimal integer 825, not a time
        if not isinstance(value, str | time):
            raise ValueError(f"{value!r} is not a time; quote it as \"HH:MM\"")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> OverrideSession:
        if self.close <= self.open:
            raise ValueError(f"session {self.date}: close must be after open")
        return self


class CalendarOverrides(BaseModel):
    """The override file: sessions added or changed, holidays added."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sessions: tuple[OverrideSession, ...] = ()
    holidays: tuple[_Override, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarOverrides:
        both = {s.date for s in self.sessions} & {h.date for h in self.holidays}
        if both:
            raise ValueError(f"dates both a session and a holiday: {sorted(both)}")
        return self

    @classmethod
    def load(cls, path: Path) -> CalendarOverrides:
        """Read the YAML file; :class:`InvalidConfiguration` with one clear line if bad."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls.model_validate(data)
        except OSError as exc:
            raise InvalidConfiguration(f"calendar overrides {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise InvalidConfiguration(f"calendar overrides {path}: not YAML ({exc})") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidConfiguration(
                f"calendar overrides {path}: {where}: {first['msg']} "
                "(times are quoted \"HH:MM\" IST)") from exc


class TradingCalendar:
    """Sessions by IST day over ``[first_day, last_day]``; closed outside that range."""

    def __init__(self, sessions: Iterable[Session], *, first_day: int, last_day: int,
                 source: str = "") -> None:
        self._sessions: dict[int, Session] = {s.day: s for s in sessions}
        self.first_day = first_day
        self.last_day = last_day
        self.source = source

    @classmethod
    def from_table(cls, sessions: Mapping[date, tuple[time, time]], *, source: str = "table",
                   overrides: CalendarOverrides | None = None) -> TradingCalendar:
        """A calendar from explicit sessions (tests, or an exchange without a library)."""
        rows = [Session(day_number(d), ist_ns(d, o), ist_ns(d, c))
                for d, (o, c) in sessions.items()]
        days = [r.day for r in rows] or [0]
        return cls(rows, first_day=min(days), last_day=max(days),
                   source=source).with_overrides(overrides)

    def with_overrides(self, overrides: CalendarOverrides | None) -> TradingCalendar:
        if overrides is None:
            return self
        sessions = dict(self._sessions)
        for h in overrides.holidays:
            sessions.pop(day_number(h.date), None)
        for s in overrides.sessions:
            day = day_number(s.date)
            sessions[day] = Session(day, ist_ns(s.date, s.open), ist_ns(s.date, s.close))
        return TradingCalendar(sessions.values(), first_day=self.first_day,
                               last_day=self.last_day, source=f"{self.source} + overrides")

    def session(self, day: int) -> Session | None:
        return self._sessions.get(day)

    def is_trading_day(self, d: date) -> bool:
        return day_number(d) in self._sessions

    def check(self, ts_ns: int) -> str | None:
        """``None`` when ``ts_ns`` is inside a session, else why the market is closed."""
        day = ist_day(ts_ns)
        session = self._sessions.get(day)
        local = ist_datetime(ts_ns)
        if session is None:
            if not self.first_day <= day <= self.last_day:
                return (f"{local:%Y-%m-%d} is beyond the trading calendar ({self.source}, "
                        f"{day_date(self.first_day)} to {day_date(self.last_day)}); add the "
                        "day to the calendar override file to trade on it")
            kind = "a weekend" if local.weekday() >= 5 else "an exchange holiday"
            return f"{local:%Y-%m-%d} ({local:%a}) is {kind}: the market is closed"
        if not session.open_ns <= ts_ns < session.close_ns:
            return (f"{local:%Y-%m-%d %H:%M:%S} IST is outside the session "
                    f"{ist_datetime(session.open_ns):%H:%M}-"
                    f"{ist_datetime(session.close_ns):%H:%M}")
        return None

    def latest_session(self, ts_ns: int) -> Session | None:
        """The last session that opened at or before ``ts_ns`` (None before the range)."""
        for day in range(ist_day(ts_ns), self.first_day - 1, -1):
            s = self._sessions.get(day)
            if s is not None and s.open_ns <= ts_ns:
                return s
        return None

    def next_session(self, after_day: int) -> Session | None:
        """The first session on a day after ``after_day`` (None beyond the range)."""
        end = max(self.last_day, max(self._sessions, default=0))
        for day in range(after_day + 1, end + 1):
            s = self._sessions.get(day)
            if s is not None:
                return s
        return None


def load_calendar(code: str = DEFAULT_CALENDAR, *, start: date = date(2015, 1, 1),
                  overrides: Path | None = None) -> TradingCalendar:
    """``exchange_calendars``' ``code`` from ``start`` to the library's last known day,
    plus the override file. Raises :class:`InvalidConfiguration` for an unknown code."""
    import exchange_calendars as xc

    try:
        factory = xc.get_calendar(code, start=start.isoformat())
    except (xc.errors.InvalidCalendarName, ValueError) as exc:
        raise InvalidConfiguration(f"trading calendar {code!r}: {exc}") from exc
    schedule = factory.schedule
    opens = schedule["open"].array.asi8.tolist()  # epoch ns, UTC
    closes = schedule["close"].array.asi8.tolist()
    rows = [Session(ist_day(o), o, c) for o, c in zip(opens, closes, strict=True)]
    first = day_number(factory.first_session.date())
    last = day_number(factory.last_session.date())
    calendar = TradingCalendar(rows, first_day=first, last_day=last,
                               source=f"exchange_calendars {code}")
    return calendar.with_overrides(
        CalendarOverrides.load(overrides) if overrides is not None else None)


