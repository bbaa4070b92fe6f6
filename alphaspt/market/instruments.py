"""Instruments: tick size, lot size, segment, type and price band per ``exchange:tradingsymbol``.

The file is the Kite Connect instruments dump (``GET /instruments``, CSV), header exactly::

    instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,
    lot_size,instrument_type,segment,exchange

plus one optional column of ours, ``circuit_percent``: the instrument's price band (circuit
limit) in percent of the previous close. The dump carries no circuit limits, so without the
column an equity (``instrument_type`` EQ in segment NSE or BSE) gets NSE's widest default
band of 20%, and futures and options none (the exchanges use dynamic bands there). An empty
cell means "no band". Tick sizes are taken as the file states them (NSE revises them by price
band: since June 2024 stocks under ₹250 trade in ₹0.01 steps; the live dump carries the
current tick), never guessed.

Symbols on signals carry no exchange: :meth:`Instruments.get` looks ``symbol`` up on NSE,
then NFO, BSE, BFO, CDS and MCX (the first that lists it), unless an exchange is given.

Bound: one entry per row of the file (the full Kite dump is about 100,000 rows).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import msgspec

from alphaspt.exceptions import InvalidConfiguration

KITE_COLUMNS: Final = (
    "instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry",
    "strike", "tick_size", "lot_size", "instrument_type", "segment", "exchange",
)
BAND_COLUMN: Final = "circuit_percent"
DEFAULT_EQUITY_BAND_PERCENT: Final = Decimal(20)
EXCHANGE_PREFERENCE: Final = ("NSE", "NFO", "BSE", "BFO", "CDS", "MCX")
_DERIVATIVE_TYPES: Final = frozenset({"FUT", "CE", "PE"})
_EQUITY_SEGMENTS: Final = frozenset({"NSE", "BSE"})


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    exchange: str
    tradingsymbol: str
    instrument_token: int = 0
    name: str = ""
    last_price: Decimal = Decimal(0)
    """In the dump: the last price when it was generated (before the open: the previous
    close); the circuit rule's reference until the risk state has seen a day's close."""
    expiry: str = ""
    strike: Decimal = Decimal(0)
    tick_size: Decimal = Decimal("0.05")
    lot_size: int = 1
    instrument_type: str = "EQ"
    segment: str = "NSE"
    circuit_percent: Decimal | None = None

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"

    @property
    def is_derivative(self) -> bool:
        return self.instrument_type in _DERIVATIVE_TYPES

    @property
    def band_percent(self) -> Decimal | None:
        """The circuit band in percent, or None (no band)."""
        if self.circuit_percent is not None:
            return self.circuit_percent
        if self.instrument_type == "EQ" and self.segment in _EQUITY_SEGMENTS:
            return DEFAULT_EQUITY_BAND_PERCENT
        return None


class Instruments:
    """The instruments table, keyed by ``exchange:tradingsymbol``."""

    def __init__(self, instruments: Iterable[Instrument], *, source: str = "") -> None:
        self._by_key = {i.key: i for i in instruments}
        self.source = source

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, symbol: str, exchange: str | None = None) -> Instrument | None:
        if exchange is not None:
            return self._by_key.get(f"{exchange}:{symbol}")
        for ex in EXCHANGE_PREFERENCE:
            found = self._by_key.get(f"{ex}:{symbol}")
            if found is not None:
                return found
        return None

    def tick_size(self, symbol: str, default: Decimal) -> Decimal:
        found = self.get(symbol)
        return found.tick_size if found is not None else default


def _decimal(row: dict[str, str], column: str, line: int, path: Path) -> Decimal:
    raw = (row.get(column) or "").strip() or "0"
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidConfiguration(
            f"instruments {path} line {line}: {column} {raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise InvalidConfiguration(
            f"instruments {path} line {line}: {column} {raw!r} must be a non-negative number")
    return value


def load_instruments(path: Path) -> Instruments:
    """Read a Kite instruments CSV (also the live dump, gunzipped). Raises
    :class:`InvalidConfiguration` with the file, line and column of the first bad cell."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in KITE_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise InvalidConfiguration(
                    f"instruments {path}: missing columns {', '.join(missing)} (the header is "
                    f"Kite's: {','.join(KITE_COLUMNS)})")
            rows = []
            for line, row in enumerate(reader, start=2):
                tick = _decimal(row, "tick_size", line, path)
                if tick <= 0:
                    raise InvalidConfiguration(
                        f"instruments {path} line {line}: tick_size must be positive")
                lot = (row.get("lot_size") or "").strip()
                if not lot.isdigit() or int(lot) < 1:
                    raise InvalidConfiguration(
                        f"instruments {path} line {line}: lot_size {lot!r} must be >= 1")
                token = (row.get("instrument_token") or "0").strip()
                band = (row.get(BAND_COLUMN) or "").strip()
                rows.append(Instrument(
                    exchange=row["exchange"].strip(),
                    tradingsymbol=row["tradingsymbol"].strip(),
                    instrument_token=int(token) if token.isdigit() else 0,
                    name=(row.get("name") or "").strip(),
                    last_price=_decimal(row, "last_price", line, path),
                    expiry=(row.get("expiry") or "").strip(),
                    strike=_decimal(row, "strike", line, path),
                    tick_size=tick,
                    lot_size=int(lot),
                    instrument_type=row["instrument_type"].strip(),
                    segment=row["segment"].strip(),
                    circuit_percent=_decimal(row, BAND_COLUMN, line, path) if band else None,
                ))
    except OSError as exc:
        raise InvalidConfiguration(f"instruments {path}: {exc.strerror}") from exc
    return Instruments(rows, source=str(path))
