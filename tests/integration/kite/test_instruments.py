"""Instrument tokens from the simulator's dump, fetched by the real KiteConnect client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteConnect

from alphaspt.feeds.kite import InstrumentCache
from alphaspt.kite_sim.instruments import mint_token, nse_equities, nse_index
from tests.support.kite_sim_server import SimServer

pytestmark = pytest.mark.integration


def test_tokens_from_the_dump_by_exchange_and_symbol(tmp_path: Path) -> None:
    listed = [*nse_equities(["INFY", "M&M", "BAJAJ-AUTO"]), nse_index("NIFTY 50")]
    with SimServer(listed) as sim:
        kite = KiteConnect("kitekey", root=sim.api_root)
        everything = kite.instruments()
        assert [r["tradingsymbol"] for r in everything] == ["INFY", "M&M", "BAJAJ-AUTO",
                                                           "NIFTY 50"]
        assert everything[0] == {
            "instrument_token": mint_token("INFY"), "exchange_token": str(mint_token("INFY")
                                                                          >> 8),
            "tradingsymbol": "INFY", "name": "INFY", "last_price": 0.0, "expiry": "",
            "strike": 0.0, "tick_size": 0.05, "lot_size": 1, "instrument_type": "EQ",
            "segment": "NSE", "exchange": "NSE"}
        assert everything[3]["instrument_token"] & 0xFF == 9  # indices' segment
        fetched: list[str] = []

        def fetch(exchange: str) -> list[dict[str, Any]]:
            fetched.append(exchange)
            rows: list[dict[str, Any]] = kite.instruments(exchange)
            return rows

        cache = InstrumentCache(tmp_path, fetch)
        found, missing = cache.lookup(["NSE:INFY", "NSE:M&M", "NSE:NIFTY 50", "NSE:TCS"])
        assert {k: v.instrument_token for k, v in found.items()} == {
            "NSE:INFY": mint_token("INFY"), "NSE:M&M": mint_token("M&M"),
            "NSE:NIFTY 50": mint_token("NIFTY 50", 9)}
        assert missing == ["NSE:TCS"]
    # the day's dump is on disk: a new cache (a restarted feed) needs no server
    again = InstrumentCache(tmp_path, fetch)
    assert again.lookup(["NSE:BAJAJ-AUTO"])[0]["NSE:BAJAJ-AUTO"].instrument_token == \
        mint_token("BAJAJ-AUTO")
    assert fetched == ["NSE"]
