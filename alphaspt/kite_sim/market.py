"""The simulator's market: what the ticker streams (and the order book may match against).

Prices walk with the project's seeded mock market (:class:`alphaspt.feeds.MockFeed`), one
step of every instrument per :meth:`SimMarket.step`; each step becomes a full
:class:`~alphaspt.kite_sim.packets.Quote` (day OHLC, cumulative volume, VWAP, five levels of
depth a tick apart). ``listeners`` are called with ``(tradingsymbol, last_price)`` after
every step, so an order book can match against the prices the ticker shows.

Bounds: one quote per listed instrument.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from alphaspt.feeds import MockFeed, MockFeedConfig
from alphaspt.kite_sim.instruments import Instrument
from alphaspt.kite_sim.packets import Level, Quote


class SimMarket:
    def __init__(self, instruments: Sequence[Instrument], *, seed: int = 42,
                 volatility: float = 0.0008, clock: Callable[[], float] = time.time) -> None:
        self.instruments = {i.instrument_token: i for i in instruments}
        self._clock = clock
        self._feed = MockFeed(MockFeedConfig(
            symbols=tuple(i.tradingsymbol for i in instruments), seed=seed,
            volatility=volatility), clock=lambda: int(clock() * 1e9))
        self._quotes: dict[int, Quote] = {}
        self._turnover: dict[int, float] = {}
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str, float], None]] = []

    def quote(self, instrument_token: int) -> Quote | None:
        """The latest quote, ``None`` for a token not listed (Kite then sends nothing)."""
        with self._lock:
            return self._quotes.get(instrument_token)

    def step(self) -> dict[int, Quote]:
        """Advance every instrument one tick; the new quotes by token."""
        now = int(self._clock())
        new: dict[int, Quote] = {}
        with self._lock:
            for token, inst in self.instruments.items():
                tick = self._feed.next_tick(inst.tradingsymbol)
                prev = self._quotes.get(token)
                price, qty = tick.price, tick.quantity
                turnover = self._turnover.get(token, 0.0) + price * qty
                self._turnover[token] = turnover
                step = inst.tick_size or 0.05
                bids = tuple(Level(round(price - step * (k + 1), 2), 10 * (k + 1), k + 1)
                             for k in range(5) if price - step * (k + 1) > 0)
                asks = tuple(Level(round(price + step * (k + 1), 2), 10 * (k + 1), k + 1)
                             for k in range(5))
                new[token] = self._quotes[token] = Quote(
                    instrument_token=token, last_price=price, last_quantity=qty,
                    average_price=round(turnover / tick.volume, 2), volume=tick.volume,
                    buy_quantity=sum(b.quantity for b in bids),
                    sell_quantity=sum(a.quantity for a in asks),
                    open=prev.open if prev else price,
                    high=max(prev.high, price) if prev else price,
                    low=min(prev.low, price) if prev else price,
                    close=prev.close if prev else self._feed.start_price(inst.tradingsymbol),
                    last_trade_time=now, exchange_timestamp=now, bids=bids, asks=asks)
        for token, quote in new.items():
            symbol = self.instruments[token].tradingsymbol
            for listener in list(self.listeners):
                listener(symbol, quote.last_price)
        return new
