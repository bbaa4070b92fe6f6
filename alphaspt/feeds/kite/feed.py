"""Kite's live ticks as :class:`~alphaspt.core.events.Tick` events.

- ``exchange_ts``: the packet's exchange timestamp (full mode; epoch seconds, which
  kiteconnect turns into a naive local datetime, turned back here); quote packets carry
  none, so it is the time of receipt.
- ``quantity``/``volume``: last traded quantity and the day's cumulative volume;
  ``bid``/``ask``: the best depth levels (full mode only).
- ``event_id``: ``stable_id("kite", exchange, symbol, <exchange second, or IST day in quote
  mode>, price, last qty, volume, buy qty, sell qty, bid, ask)``: the same market state
  always has the same id, so the snapshot Kite re-sends after a reconnect (or a restarted
  feed) is dropped downstream as a duplicate, while every new trade or quote differs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from alphaspt.core.clock import NS_PER_SECOND, ist_day
from alphaspt.core.events import Tick, stable_id
from alphaspt.feeds.kite.instruments import InstrumentCache, KiteInstrument
from alphaspt.feeds.kite.stream import KiteStream

log = logging.getLogger(__name__)


def _best(depth: dict[str, list[dict[str, Any]]] | None, side: str) -> float | None:
    if not depth:
        return None
    for level in depth.get(side, ()):
        if level.get("quantity"):
            return float(level["price"])
    return None


def to_tick(raw: dict[str, Any], inst: KiteInstrument) -> Tick:
    """One kiteconnect tick dict (with ``received_ns``) as a :class:`Tick`."""
    received: int = raw["received_ns"]
    stamp = raw.get("exchange_timestamp")
    if isinstance(stamp, datetime):
        seconds = int(stamp.timestamp())
        exchange_ts, when = seconds * NS_PER_SECOND, f"t{seconds}"
    else:
        exchange_ts, when = received, f"d{ist_day(received)}"
    depth = raw.get("depth")
    bid, ask = _best(depth, "buy"), _best(depth, "sell")
    price = float(raw["last_price"])
    quantity = int(raw.get("last_traded_quantity", 0))
    volume = int(raw.get("volume_traded", 0))
    return Tick(
        event_id=stable_id("kite", inst.exchange, inst.tradingsymbol, when, price, quantity,
                           volume, raw.get("total_buy_quantity", 0),
                           raw.get("total_sell_quantity", 0), bid, ask),
        exchange_ts=exchange_ts, ingest_ts=received, symbol=inst.tradingsymbol,
        exchange=inst.exchange, price=price, quantity=quantity, volume=volume, bid=bid,
        ask=ask)


class KiteFeed:
    """Symbols (``SYMBOL`` on NSE, or ``EXCHANGE:SYMBOL``) → tokens → ticker → Ticks."""

    def __init__(self, stream: KiteStream, instruments: InstrumentCache) -> None:
        self.stream = stream
        self.instruments = instruments
        self.by_token: dict[int, KiteInstrument] = {}
        self.started = False

    def _resolve(self, symbols: Iterable[str]) -> dict[int, KiteInstrument]:
        keys = [s if ":" in s else f"NSE:{s}" for s in sorted(set(symbols))]
        found, missing = self.instruments.lookup(keys)
        for key in missing:
            log.error("%s is not in Kite's instrument dump: not subscribed", key)
        return {i.instrument_token: i for i in found.values()}

    def set_symbols(self, symbols: Iterable[str]) -> None:
        """Subscribe to exactly these symbols (refuses a set beyond Kite's limits with
        :class:`~alphaspt.exceptions.InvalidConfiguration`, changing nothing)."""
        by_token = self._resolve(symbols)
        if self.started:
            self.stream.update(list(by_token))
        else:
            self.stream.start(list(by_token))
            self.started = True
        self.by_token = by_token

    def poll(self, timeout: float) -> list[Tick]:
        """Ticks in the configured mode. Others are dropped: a subscribe streams ``quote``
        until the ``mode`` message lands, and a quote tick (stamped at receipt) ahead of
        full ones (stamped by the exchange, earlier) would make them look stale."""
        out = []
        mode = self.stream.config.mode
        for raw in self.stream.get(timeout):
            inst = self.by_token.get(raw.get("instrument_token", -1))
            if inst is not None and raw.get("mode") == mode:  # not an unsubscribed token's
                out.append(to_tick(raw, inst))
        return out

    def close(self) -> None:
        self.stream.close()
