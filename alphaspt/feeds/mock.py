"""A seeded, reproducible random-walk market for NSE equities.

Each symbol walks on its own random stream, seeded from ``(seed, symbol)``: adding or
removing a symbol never changes another symbol's path, and the same config always gives
the same prices, quantities and event ids. Prices follow a geometric random walk and are
published on each symbol's tick grid (``tick_sizes``, e.g. from the instruments file; else
₹0.05). ``exchange_ts`` and ``ingest_ts`` come from the injected clock, so tests are fully
deterministic.

The mock market keeps its own exchange time: :class:`SessionClock` runs inside the NSE
sessions of the trading calendar (from 09:15 IST of the most recent trading day, advancing
with the wall clock, on to the next session's open at each close), so the risk manager,
judging in event time, sees an open market at any hour and on weekends.

Event ids are ``stable_id("mock", seed, symbol, seq)`` with ``seq`` counting that symbol's
ticks from 1. A symbol that is removed and later added back resumes its walk and its
``seq`` (ids are never reused, so downstream de-duplication never drops a fresh tick).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alphaspt.core.events import Tick, now_ns, stable_id
from alphaspt.market import Session, TradingCalendar

START_PRICES: Final[dict[str, float]] = {
    # Approximate 2024-25 NSE price levels (₹), rounded; only the order of magnitude matters.
    "RELIANCE": 1400.0,
    "TCS": 3500.0,
    "INFY": 1550.0,
    "HDFCBANK": 1700.0,
    "ICICIBANK": 1300.0,
    "SBIN": 800.0,
    "ITC": 430.0,
    "LT": 3500.0,
    "KOTAKBANK": 1900.0,
    "AXISBANK": 1150.0,
    "BHARTIARTL": 1700.0,
    "HINDUNILVR": 2400.0,
    "BAJFINANCE": 8500.0,
    "ASIANPAINT": 2400.0,
    "MARUTI": 12000.0,
    "SUNPHARMA": 1750.0,
    "TATAMOTORS": 750.0,
    "TATASTEEL": 150.0,
    "WIPRO": 280.0,
    "HCLTECH": 1650.0,
    "NTPC": 350.0,
    "ONGC": 250.0,
    "POWERGRID": 300.0,
    "M&M": 2900.0,
}


def default_start_price(symbol: str) -> float:
    """A stable price between ₹100 and ₹5,000 for a symbol without a known level."""
    steps = int(stable_id("mock-start", symbol), 16) % 98_000  # 0.05 steps above ₹100
    return round(100.0 + steps * 0.05, 2)


class MockFeedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...] = ("RELIANCE", "TCS", "INFY")
    seed: int = 42
    interval_s: float = Field(default=1.0, ge=0)
    """Pause between rounds (one tick per symbol) when iterating."""
    volatility: float = Field(default=0.0005, ge=0, le=0.1)
    """Standard deviation of a tick's log return (0.0005 ≈ 5 bps a tick)."""
    drift: float = Field(default=0.0, ge=-0.01, le=0.01)
    """Mean log return per tick."""
    tick_size: float = Field(default=0.05, gt=0)
    tick_sizes: dict[str, float] = Field(default_factory=dict)
    """Per-symbol ticks (the instruments file's); others use ``tick_size``."""
    mean_quantity: int = Field(default=50, ge=1)
    """Mean last-traded quantity (exponentially distributed, at least 1)."""
    max_quantity: int = Field(default=5000, ge=1)
    start_prices: dict[str, float] = Field(default_factory=dict)
    """Overrides of :data:`START_PRICES` (positive)."""
    exchange: str = "NSE"

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _clean_symbols(value)

    @field_validator("start_prices")
    @classmethod
    def _prices(cls, value: dict[str, float]) -> dict[str, float]:
        for symbol, price in value.items():
            if not (math.isfinite(price) and price > 0):
                raise ValueError(f"start price of {symbol} must be positive, got {price}")
        return value


def _clean_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for s in symbols:
        if not isinstance(s, str) or not s.strip() or s != s.strip():
            raise ValueError(f"invalid symbol {s!r}")
        if s not in out:
            out.append(s)
    return tuple(out)


class _Walk:
    __slots__ = ("log_price", "rng", "seq", "volume")

    def __init__(self, seed: int, symbol: str, start: float) -> None:
        # A reproducible simulation stream, not a secret.
        self.rng = random.Random(int(stable_id("mock-rng", seed, symbol), 16))  # noqa: S311
        self.log_price = math.log(start)
        self.seq = 0
        self.volume = 0


class MockFeed:
    """Ticks for a changing set of symbols; ``ticks(n)`` is unpaced, iteration is paced."""

    def __init__(
        self,
        config: MockFeedConfig | None = None,
        *,
        clock: Callable[[], int] = now_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or MockFeedConfig()
        self._clock = clock
        self._sleep = sleep
        self._tick = Decimal(repr(self.config.tick_size))
        self._ticks = {k: Decimal(repr(v)) for k, v in self.config.tick_sizes.items()}
        self._symbols: tuple[str, ...] = self.config.symbols
        self._walks: dict[str, _Walk] = {}
        self._cursor = 0

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def set_symbols(self, symbols: Iterable[str]) -> None:
        """Change the instruments; the next tick starts a new round with the first one."""
        self._symbols = _clean_symbols(symbols)
        self._cursor = 0

    def start_price(self, symbol: str) -> float:
        return self.config.start_prices.get(
            symbol, START_PRICES.get(symbol) or default_start_price(symbol)
        )

    def _walk(self, symbol: str) -> _Walk:
        walk = self._walks.get(symbol)
        if walk is None:
            walk = self._walks[symbol] = _Walk(
                self.config.seed, symbol, self.start_price(symbol)
            )
        return walk

    def _on_grid(self, price: float, tick: Decimal) -> float:
        steps = (Decimal(repr(price)) / tick).to_integral_value(ROUND_HALF_UP)
        return float(max(steps, Decimal(1)) * tick)

    def next_tick(self, symbol: str) -> Tick:
        """The next tick of ``symbol`` (need not be in the symbol set)."""
        cfg = self.config
        walk = self._walk(symbol)
        walk.seq += 1
        if walk.seq > 1:  # the first tick prints the start price
            walk.log_price += cfg.drift + cfg.volatility * walk.rng.gauss(0.0, 1.0)
        grid = self._ticks.get(symbol, self._tick)
        price = self._on_grid(math.exp(walk.log_price), grid)
        quantity = min(cfg.max_quantity, 1 + int(walk.rng.expovariate(1.0 / cfg.mean_quantity)))
        walk.volume += quantity
        ts = self._clock()
        tick = float(grid)
        return Tick(
            event_id=stable_id("mock", cfg.seed, symbol, walk.seq),
            exchange_ts=ts,
            ingest_ts=ts,
            symbol=symbol,
            exchange=cfg.exchange,
            price=price,
            quantity=quantity,
            volume=walk.volume,
            bid=round(max(price - tick, tick), 2),
            ask=round(price + tick, 2),
        )

    def ticks(self, n: int) -> list[Tick]:
        """The next ``n`` ticks, round-robin over the symbols (no pacing)."""
        if n < 0:
            raise ValueError(f"n must not be negative: {n}")
        out: list[Tick] = []
        while len(out) < n and self._symbols:
            out.append(self.next_tick(self._symbols[self._cursor]))
            self._cursor = (self._cursor + 1) % len(self._symbols)
        return out

    def next_round(self) -> list[Tick]:
        """One tick for every symbol, starting wherever the last round stopped."""
        return self.ticks(len(self._symbols))

    def __iter__(self) -> Iterator[Tick]:
        """Endless rounds with ``interval_s`` of (injected) sleep after each round."""
        while True:
            if self._symbols:
                yield from self.next_round()
                self._sleep(self.config.interval_s)
            else:  # nothing to publish until set_symbols: wait without spinning
                self._sleep(max(self.config.interval_s, 0.1))


class SessionClock:
    """Simulated exchange time inside trading sessions (epoch ns), for the mock market.

    Starts at ``start_ns`` (default: the open of the most recent session at the wall
    clock's time) and advances with the wall clock; time past a session's close continues
    at the next session's open, so it never leaves a session and never goes backwards.
    Beyond the calendar's last session it stays just before that session's close.
    """

    def __init__(self, calendar: TradingCalendar, *, wall: Callable[[], int] = now_ns,
                 start_ns: int | None = None) -> None:
        self._calendar = calendar
        self._wall = wall
        self._wall0 = wall()
        at = self._wall0 if start_ns is None else start_ns
        session = calendar.latest_session(at)
        if session is None:
            session = calendar.next_session(-1)
        if session is None:
            raise ValueError("the trading calendar has no session")
        self._session: Session = session
        self._offset = 0 if start_ns is None else max(0, min(
            start_ns - session.open_ns, session.close_ns - session.open_ns))

    @property
    def session(self) -> Session:
        return self._session

    def __call__(self) -> int:
        elapsed = self._offset + (self._wall() - self._wall0)
        s = self._session
        while elapsed >= s.close_ns - s.open_ns:
            nxt = self._calendar.next_session(s.day)
            if nxt is None:
                return s.close_ns - 1
            elapsed -= s.close_ns - s.open_ns
            self._offset -= s.close_ns - s.open_ns
            s = self._session = nxt
        return s.open_ns + elapsed
