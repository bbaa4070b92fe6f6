"""The simulator's instruments and the dump Kite serves at ``/instruments[/{exchange}]``.

Tokens follow Kite's rule ``instrument_token = exchange_token * 256 + segment`` (1 NSE,
9 indices); :func:`mint_token` derives a stable exchange token from the symbol. The dump
is the CSV with Kite's exact header, gzip-encoded, ``Content-Type: text/csv``, which
``KiteConnect.instruments()`` parses; like Kite it needs no auth.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import web

HEADER: Final = ("instrument_token", "exchange_token", "tradingsymbol", "name", "last_price",
                 "expiry", "strike", "tick_size", "lot_size", "instrument_type", "segment",
                 "exchange")
SEGMENT_CODES: Final = {"NSE": 1, "NFO": 2, "CDS": 3, "BSE": 4, "BFO": 5, "BCD": 6, "MCX": 7,
                        "INDICES": 9, "NCO": 12}


def mint_token(symbol: str, segment: int = 1) -> int:
    """A stable token for ``symbol``: ``exchange_token * 256 + segment``."""
    exchange_token = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:3], "big")
    return exchange_token * 256 + segment


@dataclass(frozen=True)
class Instrument:
    instrument_token: int
    tradingsymbol: str
    exchange: str = "NSE"
    segment: str = "NSE"
    name: str = ""
    instrument_type: str = "EQ"
    tick_size: float = 0.05
    lot_size: int = 1
    last_price: float = 0.0
    expiry: str = ""
    strike: float = 0.0

    @property
    def exchange_token(self) -> int:
        return self.instrument_token >> 8

    @property
    def key(self) -> str:
        """``exchange:tradingsymbol``: tokens may be reused after an expiry, keys not."""
        return f"{self.exchange}:{self.tradingsymbol}"


def nse_equities(symbols: Iterable[str]) -> list[Instrument]:
    """NSE cash-market instruments for ``symbols`` (tick ₹0.05, lot 1)."""
    return [Instrument(mint_token(s), s, name=s) for s in symbols]


def nse_index(name: str) -> Instrument:
    """An index (segment 9, not tradable), listed like Kite: ``EQ``, ``INDICES``, ``NSE``."""
    return Instrument(mint_token(name, SEGMENT_CODES["INDICES"]), name, segment="INDICES",
                      name=name, tick_size=0.0, lot_size=0)


def instruments_csv(instruments: Sequence[Instrument]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for i in instruments:
        writer.writerow([i.instrument_token, i.exchange_token, i.tradingsymbol, i.name,
                         i.last_price, i.expiry, i.strike, i.tick_size, i.lot_size,
                         i.instrument_type, i.segment, i.exchange])
    return out.getvalue()


def add_instrument_routes(app: web.Application, instruments: Sequence[Instrument]) -> None:
    """``GET /instruments`` (all) and ``GET /instruments/{exchange}``: the gzipped CSV dump."""
    listed = tuple(instruments)

    def dump(rows: Sequence[Instrument]) -> web.Response:
        body = gzip.compress(instruments_csv(rows).encode())
        return web.Response(body=body, content_type="text/csv",
                            headers={"Content-Encoding": "gzip"})

    async def all_instruments(request: web.Request) -> web.Response:
        return dump(listed)

    async def by_exchange(request: web.Request) -> web.Response:
        exchange = request.match_info["exchange"].upper()
        return dump([i for i in listed if i.exchange == exchange])

    app.router.add_get("/instruments", all_instruments)
    app.router.add_get("/instruments/{exchange}", by_exchange)
