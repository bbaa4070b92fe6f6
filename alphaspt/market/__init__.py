"""The exchange's rules as pure data: trading calendar, instruments, exact money.

Pure: imports nothing from Kafka, Redis, PostgreSQL or Kubernetes (import-linter enforces
it); the risk engine, the paper broker and the mock feed use it alike.
"""

from alphaspt.market.calendar import (
    CalendarOverrides,
    Session,
    TradingCalendar,
    load_calendar,
)
from alphaspt.market.instruments import Instrument, Instruments, load_instruments
from alphaspt.market.money import decimal_of, to_paise
from alphaspt.market.settings import calendar_from, instruments_from

__all__ = [
    "CalendarOverrides",
    "Instrument",
    "Instruments",
    "Session",
    "TradingCalendar",
    "calendar_from",
    "decimal_of",
    "instruments_from",
    "load_calendar",
    "load_instruments",
    "to_paise",
]
