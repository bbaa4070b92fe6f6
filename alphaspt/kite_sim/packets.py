"""Kite ticker binary packets: encode (the simulator) and decode (tests, tools).

Layout (``/work/shared/kite-protocol.md`` §5.2, all integers big-endian):

- frame: ``uint16 N`` then N x (``uint16 length`` + packet); a 1-byte frame is a heartbeat;
- packet type by length: 8 ltp, 28 index quote, 32 index full, 44 quote, 184 full;
- tradable: token, last price, last qty, average price, volume, total buy qty, total sell
  qty, open, high, low, close (44); then last trade time, oi, oi day high, oi day low,
  exchange timestamp, and 10 depth entries ``uint32 qty, uint32 price, uint16 orders, pad``
  (5 bids, 5 offers) (184);
- index (segment 9): token, last price, high, low, open, close (note the order), price
  change (28); then exchange timestamp (32);
- prices are integers: x100, but x10,000,000 for CDS (segment 3) and x10,000 for BCD (6)
  and NCO (12); the segment is ``instrument_token & 0xFF``; times are epoch seconds.

:func:`decode_packet` returns exactly the dict ``kiteconnect``'s ``KiteTicker`` hands to
``on_ticks`` except that times stay epoch seconds (the client makes naive local
datetimes of them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Mode = Literal["ltp", "quote", "full"]
MODES: Final[tuple[Mode, ...]] = ("ltp", "quote", "full")
HEARTBEAT: Final = b"\x00"
SEGMENT_CDS: Final = 3
SEGMENT_BCD: Final = 6
SEGMENT_INDICES: Final = 9
SEGMENT_NCO: Final = 12
_U32_MAX: Final = 0xFFFFFFFF
_QUOTE: Final = struct.Struct(">11I")
_FULL_TAIL: Final = struct.Struct(">5I")
_DEPTH: Final = struct.Struct(">IIHH")
_INDEX: Final = struct.Struct(">7I")


def segment(instrument_token: int) -> int:
    return instrument_token & 0xFF


def price_divisor(instrument_token: int) -> float:
    seg = segment(instrument_token)
    if seg == SEGMENT_CDS:
        return 10_000_000.0
    if seg in (SEGMENT_BCD, SEGMENT_NCO):
        return 10_000.0
    return 100.0


@dataclass(frozen=True)
class Level:
    """One market-depth entry."""

    price: float
    quantity: int
    orders: int


@dataclass(frozen=True)
class Quote:
    """Everything a full packet can say about one instrument at one moment."""

    instrument_token: int
    last_price: float
    last_quantity: int = 0
    average_price: float = 0.0
    volume: int = 0
    buy_quantity: int = 0
    sell_quantity: int = 0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    last_trade_time: int = 0
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: int = 0
    bids: tuple[Level, ...] = field(default_factory=tuple)
    asks: tuple[Level, ...] = field(default_factory=tuple)

    @property
    def tradable(self) -> bool:
        return segment(self.instrument_token) != SEGMENT_INDICES


def _u32(value: int, name: str) -> int:
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"{name} {value} does not fit an unsigned 32-bit field")
    return value


def _paise(price: float, divisor: float, name: str) -> int:
    return _u32(round(price * divisor), name)


def _depth(levels: Sequence[Level], divisor: float) -> bytes:
    if len(levels) > 5:
        raise ValueError(f"at most 5 depth levels a side, got {len(levels)}")
    padded = [*levels, *[Level(0.0, 0, 0)] * (5 - len(levels))]
    out = b""
    for lv in padded:
        if not 0 <= lv.orders <= 0xFFFF:
            raise ValueError(f"depth orders {lv.orders} does not fit 16 bits")
        out += _DEPTH.pack(_u32(lv.quantity, "depth quantity"),
                           _paise(lv.price, divisor, "depth price"), lv.orders, 0)
    return out


def encode_packet(quote: Quote, mode: Mode) -> bytes:
    """One packet of ``mode`` (8, 28/32 for indices, 44 or 184 bytes)."""
    token = _u32(quote.instrument_token, "instrument_token")
    div = price_divisor(token)
    ltp = _paise(quote.last_price, div, "last_price")
    if mode == "ltp":
        return struct.pack(">II", token, ltp)
    if mode not in ("quote", "full"):
        raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    if not quote.tradable:
        # Bytes 24-28 ("price change"): scale and sign undocumented, ignored by every
        # SDK (they compute the change from the close); sent as 0.
        out = _INDEX.pack(token, ltp, _paise(quote.high, div, "high"),
                          _paise(quote.low, div, "low"), _paise(quote.open, div, "open"),
                          _paise(quote.close, div, "close"), 0)
        if mode == "full":
            out += struct.pack(">I", _u32(quote.exchange_timestamp, "exchange_timestamp"))
        return out
    out = _QUOTE.pack(
        token, ltp, _u32(quote.last_quantity, "last_quantity"),
        _paise(quote.average_price, div, "average_price"), _u32(quote.volume, "volume"),
        _u32(quote.buy_quantity, "buy_quantity"), _u32(quote.sell_quantity, "sell_quantity"),
        _paise(quote.open, div, "open"), _paise(quote.high, div, "high"),
        _paise(quote.low, div, "low"), _paise(quote.close, div, "close"))
    if mode == "full":
        out += _FULL_TAIL.pack(
            _u32(quote.last_trade_time, "last_trade_time"), _u32(quote.oi, "oi"),
            _u32(quote.oi_day_high, "oi_day_high"), _u32(quote.oi_day_low, "oi_day_low"),
            _u32(quote.exchange_timestamp, "exchange_timestamp"))
        out += _depth(quote.bids, div) + _depth(quote.asks, div)
    return out


def encode_frame(packets: Iterable[bytes]) -> bytes:
    """A binary WebSocket message carrying ``packets`` (at most 65,535 of them)."""
    items = list(packets)
    if len(items) > 0xFFFF:
        raise ValueError(f"a frame holds at most 65535 packets, got {len(items)}")
    return struct.pack(">H", len(items)) + b"".join(
        struct.pack(">H", len(p)) + p for p in items)


def split_frame(frame: bytes) -> list[bytes]:
    """The packets of a binary message (none for a heartbeat)."""
    if len(frame) < 2:
        return []
    (count,) = struct.unpack_from(">H", frame, 0)
    out: list[bytes] = []
    pos = 2
    for _ in range(count):
        if pos + 2 > len(frame):
            raise ValueError(f"frame truncated: {count} packets announced, {len(out)} found")
        (length,) = struct.unpack_from(">H", frame, pos)
        packet = frame[pos + 2:pos + 2 + length]
        if len(packet) != length:
            raise ValueError(f"frame truncated inside packet {len(out) + 1}")
        out.append(packet)
        pos += 2 + length
    return out


def _ohlc(o: float, h: float, lo: float, c: float) -> dict[str, float]:
    return {"open": o, "high": h, "low": lo, "close": c}


def _change(last: float, close: float) -> float:
    return (last - close) * 100 / close if close != 0 else 0


def decode_packet(packet: bytes) -> dict[str, Any]:
    """A packet as ``kiteconnect`` decodes it (times as epoch seconds)."""
    if len(packet) < 8:
        raise ValueError(f"packet of {len(packet)} bytes: shorter than an ltp packet")
    token, ltp_raw = struct.unpack_from(">II", packet, 0)
    div = price_divisor(token)
    tradable = segment(token) != SEGMENT_INDICES
    base: dict[str, Any] = {"tradable": tradable, "instrument_token": token,
                            "last_price": ltp_raw / div}
    n = len(packet)
    if n == 8:
        return {**base, "mode": "ltp"}
    if n in (28, 32):
        _, _, high, low, open_, close, _change_raw = _INDEX.unpack_from(packet, 0)
        out = {**base, "mode": "quote" if n == 28 else "full",
               "ohlc": _ohlc(open_ / div, high / div, low / div, close / div)}
        out["change"] = _change(out["last_price"], close / div)
        if n == 32:
            out["exchange_timestamp"] = struct.unpack_from(">I", packet, 28)[0]
        return out
    if n in (44, 184):
        v = _QUOTE.unpack_from(packet, 0)
        out = {**base, "mode": "quote" if n == 44 else "full",
               "last_traded_quantity": v[2], "average_traded_price": v[3] / div,
               "volume_traded": v[4], "total_buy_quantity": v[5], "total_sell_quantity": v[6],
               "ohlc": _ohlc(v[7] / div, v[8] / div, v[9] / div, v[10] / div)}
        out["change"] = _change(out["last_price"], v[10] / div)
        if n == 184:
            ltt, oi, oi_high, oi_low, ts = _FULL_TAIL.unpack_from(packet, 44)
            depth: dict[str, list[dict[str, Any]]] = {"buy": [], "sell": []}
            for i in range(10):
                qty, price, orders, _pad = _DEPTH.unpack_from(packet, 64 + 12 * i)
                depth["sell" if i >= 5 else "buy"].append(
                    {"quantity": qty, "price": price / div, "orders": orders})
            out.update(last_trade_time=ltt, oi=oi, oi_day_high=oi_high, oi_day_low=oi_low,
                       exchange_timestamp=ts, depth=depth)
        return out
    raise ValueError(f"packet of {n} bytes: not 8, 28, 32, 44 or 184")


def decode_frame(frame: bytes) -> list[dict[str, Any]]:
    return [decode_packet(p) for p in split_frame(frame)]
