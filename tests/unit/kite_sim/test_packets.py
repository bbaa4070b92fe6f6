"""Kite's binary packets: Zerodha's own fixture packets decode the same with our decoder and
with kiteconnect's, to the values of Zerodha's paired JSON; what we encode, kiteconnect reads."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from alphaspt.kite_sim.packets import (
    HEARTBEAT,
    Level,
    Quote,
    decode_frame,
    decode_packet,
    encode_frame,
    encode_packet,
    split_frame,
)

# zerodha/kiteconnect-mocks c7a8123: ticker_full.packet and ticker_quote.packet (base64 of
# one packet, no frame header), paired with ticker_full.json / ticker_quote.json.
FULL_PACKET = base64.b64decode(
    "AAY6AQACZroAAAAHAAJlbQASMhcAA+m7AAWKAQACZPMAAmc8AAJhyQACZGxg4pR/AAAAAAAAAAAAAAAAYOKUfwAA"
    "AAUAAmacAAEAAAAAAIwAAmZ0AAIAAAAAAAIAAmZvAAEAAAAAANsAAmZqAAcAAAAAADIAAmZlAAEAAAAAAKwAAma6"
    "AAMAAAAAACwAAma/AAMAAAAAAS4AAmbJAAMAAAAAAI0AAmbOAAIAAAAAAtQAAmbTAAUAAA==")
QUOTE_PACKET = base64.b64decode("AAY6AQACZoMAAAABAAJlaQAR8bIAA+n/AAWANwACZPMAAmc8AAJhyQACZGw=")
FIXTURE_TIME = 1625461887  # ticker_full.json: "2021-07-05T10:41:27+05:30"


def kiteconnect_parse(frame: bytes) -> list[dict[str, Any]]:
    """kiteconnect's own parser, times turned back into epoch seconds."""
    ticks: list[dict[str, Any]] = KiteTicker("k", "t")._parse_binary(frame)
    for tick in ticks:
        for key in ("last_trade_time", "exchange_timestamp"):
            if isinstance(tick.get(key), datetime):
                tick[key] = int(tick[key].timestamp())
    return ticks


def test_zerodha_full_fixture_decodes_identically_to_zerodhas_json() -> None:
    assert len(FULL_PACKET) == 184
    ours = decode_packet(FULL_PACKET)
    assert kiteconnect_parse(encode_frame([FULL_PACKET])) == [ours]
    # the values of ticker_full.json (its names are the docs', not the Python client's)
    assert ours["mode"] == "full" and ours["tradable"] is True
    assert ours["instrument_token"] == 408065
    assert ours["last_price"] == 1573.7
    assert ours["last_traded_quantity"] == 7
    assert ours["average_traded_price"] == 1570.37
    assert ours["volume_traded"] == 1192471
    assert (ours["total_buy_quantity"], ours["total_sell_quantity"]) == (256443, 363009)
    assert ours["ohlc"] == {"open": 1569.15, "high": 1575, "low": 1561.05, "close": 1567.8}
    assert ours["last_trade_time"] == ours["exchange_timestamp"] == FIXTURE_TIME
    assert (ours["oi"], ours["oi_day_high"], ours["oi_day_low"]) == (0, 0, 0)
    assert ours["depth"]["buy"] == [
        {"price": 1573.4, "quantity": 5, "orders": 1},
        {"price": 1573.0, "quantity": 140, "orders": 2},
        {"price": 1572.95, "quantity": 2, "orders": 1},
        {"price": 1572.9, "quantity": 219, "orders": 7},
        {"price": 1572.85, "quantity": 50, "orders": 1}]
    assert ours["depth"]["sell"] == [
        {"price": 1573.7, "quantity": 172, "orders": 3},
        {"price": 1573.75, "quantity": 44, "orders": 3},
        {"price": 1573.85, "quantity": 302, "orders": 3},
        {"price": 1573.9, "quantity": 141, "orders": 2},
        {"price": 1573.95, "quantity": 724, "orders": 5}]
    # Python's change is a percentage; the JSON's 5.9 is the absolute difference
    assert ours["change"] == pytest.approx((1573.7 - 1567.8) * 100 / 1567.8)


def test_zerodha_quote_fixture_decodes_identically_to_zerodhas_json() -> None:
    assert len(QUOTE_PACKET) == 44
    ours = decode_packet(QUOTE_PACKET)
    assert kiteconnect_parse(encode_frame([QUOTE_PACKET])) == [ours]
    assert ours == {
        "tradable": True, "mode": "quote", "instrument_token": 408065, "last_price": 1573.15,
        "last_traded_quantity": 1, "average_traded_price": 1570.33, "volume_traded": 1175986,
        "total_buy_quantity": 256511, "total_sell_quantity": 360503,
        "ohlc": {"open": 1569.15, "high": 1575, "low": 1561.05, "close": 1567.8},
        "change": ours["change"]}
    assert ours["change"] == pytest.approx((1573.15 - 1567.8) * 100 / 1567.8)


def test_fixtures_reencode_to_the_same_bytes() -> None:
    d = decode_packet(FULL_PACKET)
    quote = Quote(
        instrument_token=d["instrument_token"], last_price=d["last_price"],
        last_quantity=d["last_traded_quantity"], average_price=d["average_traded_price"],
        volume=d["volume_traded"], buy_quantity=d["total_buy_quantity"],
        sell_quantity=d["total_sell_quantity"], open=d["ohlc"]["open"],
        high=d["ohlc"]["high"], low=d["ohlc"]["low"], close=d["ohlc"]["close"],
        last_trade_time=d["last_trade_time"], exchange_timestamp=d["exchange_timestamp"],
        bids=tuple(Level(x["price"], x["quantity"], x["orders"]) for x in d["depth"]["buy"]),
        asks=tuple(Level(x["price"], x["quantity"], x["orders"]) for x in d["depth"]["sell"]))
    assert encode_packet(quote, "full") == FULL_PACKET
    assert encode_packet(quote, "quote") == FULL_PACKET[:44]
    assert decode_packet(encode_packet(quote, "ltp")) == {
        "tradable": True, "mode": "ltp", "instrument_token": 408065, "last_price": 1573.7}


prices = st.integers(min_value=1, max_value=2_000_000).map(lambda p: p / 100)
levels = st.builds(Level, prices, st.integers(0, 10**6), st.integers(0, 0xFFFF))


@given(token=st.integers(1, 2**24 - 1).map(lambda t: t * 256 + 1), ltp=prices, o=prices, h=prices,
       lo=prices, c=prices, qty=st.integers(0, 10**6), vol=st.integers(0, 2**32 - 1),
       ts=st.integers(0, 2**32 - 1), bids=st.lists(levels, max_size=5),
       asks=st.lists(levels, max_size=5), mode=st.sampled_from(["ltp", "quote", "full"]))
def test_round_trip_through_kiteconnect(token: int, ltp: float, o: float, h: float,
                                        lo: float, c: float, qty: int, vol: int, ts: int,
                                        bids: list[Level], asks: list[Level],
                                        mode: str) -> None:
    quote = Quote(instrument_token=token, last_price=ltp, last_quantity=qty,
                  average_price=ltp, volume=vol, buy_quantity=qty, sell_quantity=qty,
                  open=o, high=h, low=lo, close=c, last_trade_time=ts, exchange_timestamp=ts,
                  bids=tuple(bids), asks=tuple(asks))
    frame = encode_frame([encode_packet(quote, mode)] * 2)  # type: ignore[arg-type]
    parsed = kiteconnect_parse(frame)
    assert parsed == decode_frame(frame)
    tick = parsed[0]
    assert tick["last_price"] == ltp and tick["mode"] == mode
    if mode == "full":
        assert tick["ohlc"] == {"open": o, "high": h, "low": lo, "close": c}
        assert tick["volume_traded"] == vol and tick["exchange_timestamp"] == ts
        assert [x["price"] for x in tick["depth"]["buy"][:len(bids)]] == [b.price for b in bids]


@pytest.mark.parametrize(("token", "price", "raw"), [
    (412675, 83.2512345, 832512345),  # CDS (segment 3): x10^7
    (256265 - 9 + 6, 71.2345, 712345),  # BCD (segment 6): x10^4
    (408065, 1573.15, 157315),  # NSE: paise
])
def test_price_scale_by_segment(token: int, price: float, raw: int) -> None:
    packet = encode_packet(Quote(instrument_token=token, last_price=price), "ltp")
    assert int.from_bytes(packet[4:8], "big") == raw
    assert kiteconnect_parse(encode_frame([packet]))[0]["last_price"] == pytest.approx(price)


def test_index_packets_put_high_low_before_open_close() -> None:
    nifty = Quote(instrument_token=256265, last_price=24100.5, open=24000.0, high=24150.0,
                  low=23990.25, close=24050.0, exchange_timestamp=FIXTURE_TIME)
    quote, full = encode_packet(nifty, "quote"), encode_packet(nifty, "full")
    assert (len(quote), len(full)) == (28, 32)
    assert int.from_bytes(quote[8:12], "big") == 2415000  # high first
    for packet in (quote, full):
        assert kiteconnect_parse(encode_frame([packet])) == [decode_packet(packet)]
    tick = decode_packet(full)
    assert tick["tradable"] is False and tick["exchange_timestamp"] == FIXTURE_TIME
    assert tick["ohlc"] == {"open": 24000.0, "high": 24150.0, "low": 23990.25, "close": 24050.0}


def test_heartbeat_and_bad_input() -> None:
    assert split_frame(HEARTBEAT) == [] and KiteTicker("k", "t")._parse_binary(HEARTBEAT) == []
    with pytest.raises(ValueError, match="does not fit"):
        encode_packet(Quote(instrument_token=408065, last_price=5e7), "ltp")
    with pytest.raises(ValueError, match="not 8, 28, 32, 44 or 184"):
        decode_packet(b"\x00" * 12)
    with pytest.raises(ValueError, match="truncated"):
        split_frame(encode_frame([QUOTE_PACKET])[:-3])
