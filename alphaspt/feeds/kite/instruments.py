"""Instrument tokens from Kite's instrument dump, fetched once a day and cached on disk.

Kite regenerates the dump every morning (about 08:30 IST) and may reuse a token for a
different derivative after an expiry, so lookups are keyed by ``exchange:tradingsymbol``
and the cache is per *dump day*: the IST date of ``now - 08:30`` (a fetch at 07:00 IST
still belongs to yesterday's dump, one at 09:00 to today's). One file per exchange,
``instruments-<EXCHANGE>-<YYYY-MM-DD>.csv`` (token, symbol, segment, tick and lot size);
writing a new day's file removes that exchange's older ones (bound: one file per
exchange). ``fetch(exchange)`` is ``KiteConnect.instruments`` (the real client parses
Kite's gzipped CSV).
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)
DUMP_DAY_OFFSET: Final = timedelta(hours=5, minutes=30) - timedelta(hours=8, minutes=30)
"""IST (+05:30) minus the dump's publication time (08:30): the dump day starts then."""
_COLUMNS: Final = ("instrument_token", "tradingsymbol", "segment", "tick_size", "lot_size")


@dataclass(frozen=True)
class KiteInstrument:
    instrument_token: int
    exchange: str
    tradingsymbol: str
    segment: str
    tick_size: float
    lot_size: int

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


def dump_day(now: float) -> str:
    """The dump a fetch at ``now`` (epoch seconds) gets: ``YYYY-MM-DD``."""
    return (datetime.fromtimestamp(now, UTC) + DUMP_DAY_OFFSET).date().isoformat()


class InstrumentCache:
    def __init__(self, directory: Path, fetch: Callable[[str], Iterable[Mapping[str, Any]]],
                 *, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._fetch = fetch
        self._clock = clock
        self._loaded: dict[str, tuple[str, dict[str, KiteInstrument]]] = {}
        self.fetches = 0

    def path(self, exchange: str, day: str) -> Path:
        return self.directory / f"instruments-{exchange}-{day}.csv"

    def exchange(self, exchange: str) -> dict[str, KiteInstrument]:
        """Today's instruments of ``exchange`` by ``exchange:tradingsymbol``."""
        exchange = exchange.upper()
        day = dump_day(self._clock())
        loaded = self._loaded.get(exchange)
        if loaded is not None and loaded[0] == day:
            return loaded[1]
        path = self.path(exchange, day)
        rows = self._read(exchange, path) if path.exists() else None
        if rows is None:
            rows = self._download(exchange, day)
        self._loaded[exchange] = (day, rows)
        return rows

    def lookup(self, keys: Iterable[str]) -> tuple[dict[str, KiteInstrument], list[str]]:
        """The instruments of ``EXCHANGE:SYMBOL`` keys, and the keys the dump lacks."""
        found: dict[str, KiteInstrument] = {}
        missing: list[str] = []
        for key in keys:
            exchange, _, symbol = key.partition(":")
            inst = self.exchange(exchange).get(f"{exchange.upper()}:{symbol}")
            if inst is None:
                missing.append(key)
            else:
                found[key] = inst
        return found, missing

    def _read(self, exchange: str, path: Path) -> dict[str, KiteInstrument] | None:
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                return {i.key: i for i in (self._row(exchange, r) for r in reader)}
        except (OSError, KeyError, ValueError) as exc:
            log.warning("instrument cache %s unreadable (%s): fetching the dump again",
                        path, exc)
            return None

    @staticmethod
    def _row(exchange: str, row: Mapping[str, Any]) -> KiteInstrument:
        return KiteInstrument(int(row["instrument_token"]), exchange, str(row["tradingsymbol"]),
                              str(row["segment"]), float(row["tick_size"]),
                              int(row["lot_size"]))

    def _download(self, exchange: str, day: str) -> dict[str, KiteInstrument]:
        self.fetches += 1
        rows: dict[str, KiteInstrument] = {}
        for record in self._fetch(exchange):
            if str(record.get("exchange", exchange)).upper() != exchange:
                continue
            inst = self._row(exchange, record)
            rows[inst.key] = inst
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(exchange, day)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(_COLUMNS)
            for i in rows.values():
                writer.writerow([i.instrument_token, i.tradingsymbol, i.segment, i.tick_size,
                                 i.lot_size])
        os.replace(tmp, path)
        for old in self.directory.glob(f"instruments-{exchange}-*.csv"):
            if old != path:
                old.unlink(missing_ok=True)
        log.info("instrument dump of %s for %s: %d instruments", exchange, day, len(rows))
        return rows
