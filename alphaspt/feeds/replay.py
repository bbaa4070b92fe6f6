"""Replay recorded trades from a CSV file as ticks.

Format: a header ``timestamp,symbol,price,quantity`` with an optional ``volume`` column
(order as given, names case-insensitive), then one trade per row:

- ``timestamp``: ISO-8601 *with* a UTC offset (``2025-01-06T09:15:00.250+05:30``, ``...Z``)
  or integer epoch milliseconds. Naive times are refused: their zone would be a guess.
  Timestamps must not decrease.
- ``symbol``: the NSE trading symbol; ``price`` > 0; ``quantity`` ≥ 0 (last traded);
- ``volume`` ≥ 0, cumulative for the day; without the column it is the running sum of the
  symbol's quantities.

Blank lines are skipped. Each tick's id is ``stable_id("replay", <file stem>, <line
number>)`` (1-based line in the file, header = line 1), so a replay always yields the same
ids and a re-run de-duplicates downstream. A malformed row raises
:class:`ReplayFormatError` naming the file and line; with ``on_error`` the error is handed
to the callback instead (to dead-letter or report it) and the replay goes on.

Pacing: ``speed=None`` yields as fast as the consumer takes ticks; ``speed=s`` replays the
gaps between timestamps divided by ``s`` (1.0 = real time, 60.0 = a minute per second),
anchored to the start so processing time does not accumulate as drift. A tick due
within :data:`PACING_QUANTUM` goes out at once (at most that much early): a sleep per tick
cost more than the tick's own work at 1,000 ticks/s. ``sleep`` and ``monotonic`` are
injectable so tests never sleep.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from alphaspt.core.events import Tick, now_ns, stable_id

REQUIRED_COLUMNS: Final = ("timestamp", "symbol", "price", "quantity")
OPTIONAL_COLUMNS: Final = ("volume",)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class ReplayFormatError(ValueError):
    """A replay file or row that cannot be read; ``path:line: reason``."""

    def __init__(self, path: Path, line: int, reason: str, row: list[str] | None = None) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason
        self.row = row


def parse_timestamp(text: str) -> int:
    """Epoch nanoseconds of an ISO-8601 time with offset, or of integer epoch milliseconds."""
    value = text.strip()
    if value.isdigit():
        return int(value) * 1_000_000
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is neither ISO-8601 nor epoch milliseconds"
        ) from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _non_negative_int(name: str, text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


PACING_QUANTUM = 0.005
"""Seconds: a tick due sooner than this is not waited for (ticks leave in small bursts)."""


class ReplayFeed:
    """Iterating reads the file from the start each time and yields its ticks."""

    def __init__(
        self,
        path: str | Path,
        speed: float | None = None,
        *,
        on_error: Callable[[ReplayFormatError], None] | None = None,
        exchange: str = "NSE",
        clock: Callable[[], int] = now_ns,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be positive or None, got {speed!r}")
        self.path = Path(path)
        self.speed = speed
        self._on_error = on_error
        self._exchange = exchange
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic

    def __iter__(self) -> Iterator[Tick]:
        anchor: tuple[float, int] | None = None  # (monotonic, exchange_ts) of the first tick
        for line, ts, symbol, price, quantity, volume in self._rows():
            if self.speed is not None:
                if anchor is None:
                    anchor = (self._monotonic(), ts)
                else:
                    due = anchor[0] + (ts - anchor[1]) / 1e9 / self.speed
                    delay = due - self._monotonic()
                    if delay > PACING_QUANTUM:
                        self._sleep(delay)
            yield Tick(
                event_id=stable_id("replay", self.path.stem, line),
                exchange_ts=ts,
                ingest_ts=self._clock(),
                symbol=symbol,
                exchange=self._exchange,
                price=price,
                quantity=quantity,
                volume=volume,
            )

    def _fail(self, line: int, reason: str, row: list[str] | None = None) -> None:
        error = ReplayFormatError(self.path, line, reason, row)
        if self._on_error is None:
            raise error
        self._on_error(error)

    def _rows(self) -> Iterator[tuple[int, int, str, float, int, int]]:
        try:
            handle = self.path.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise ReplayFormatError(self.path, 0, f"cannot open: {exc.strerror}") from exc
        with handle:
            reader = csv.reader(handle)
            header: list[str] | None = None
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    header = [c.strip().lower() for c in row]
                    break
            if header is None:
                raise ReplayFormatError(self.path, 1, "empty file: no header")
            header_line = reader.line_num
            allowed = (list(REQUIRED_COLUMNS), [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS])
            if header not in allowed:
                raise ReplayFormatError(
                    self.path,
                    header_line,
                    "header must be timestamp,symbol,price,quantity[,volume], got "
                    + ",".join(header),
                    row,
                )
            has_volume = len(header) == 5
            last_ts: int | None = None
            volumes: dict[str, int] = {}
            for row in reader:
                line = reader.line_num
                if not row or not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    self._fail(line, f"expected {len(header)} fields, got {len(row)}", row)
                    continue
                try:
                    ts = parse_timestamp(row[0])
                    symbol = row[1].strip()
                    if not symbol or " " in symbol:
                        raise ValueError(f"invalid symbol {row[1]!r}")
                    try:
                        price = float(row[2])
                    except ValueError:
                        raise ValueError(f"price {row[2]!r} is not a number") from None
                    if not (math.isfinite(price) and price > 0):
                        raise ValueError(f"price must be positive, got {row[2].strip()}")
                    quantity = _non_negative_int("quantity", row[3])
                    volume = (
                        _non_negative_int("volume", row[4])
                        if has_volume
                        else volumes.get(symbol, 0) + quantity
                    )
                    if last_ts is not None and ts < last_ts:
                        raise ValueError(
                            f"timestamp {row[0].strip()} is earlier than the row before"
                        )
                except ValueError as exc:
                    self._fail(line, str(exc), row)
                    continue
                last_ts = ts
                volumes[symbol] = volume
                yield line, ts, symbol, price, quantity, volume
