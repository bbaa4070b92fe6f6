"""The simulator's ticker and instrument routes on a loopback port, in a background thread."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

from aiohttp import web

from alphaspt.kite_sim.instruments import Instrument, add_instrument_routes
from alphaspt.kite_sim.market import SimMarket
from alphaspt.kite_sim.packets import Quote
from alphaspt.kite_sim.ticker import (
    RedactingAccessLogger,
    TickerConfig,
    TickerHub,
    add_ticker_routes,
)
from alphaspt.local.process import free_port


class RecordingMarket(SimMarket):
    """Remembers every quote it produced, so a test can check what a client received."""

    def __init__(self, instruments: Sequence[Instrument], **kwargs: object) -> None:
        super().__init__(instruments, **kwargs)  # type: ignore[arg-type]
        self.produced: dict[int, list[Quote]] = {}

    def step(self) -> dict[int, Quote]:
        quotes = super().step()
        for token, quote in quotes.items():
            self.produced.setdefault(token, []).append(quote)
        return quotes


class SimServer:
    def __init__(self, instruments: Sequence[Instrument], config: TickerConfig | None = None,
                 authorize: Callable[[str, str], bool] | None = None) -> None:
        self.market = RecordingMarket(instruments)
        self.app = web.Application()
        self.hub: TickerHub = add_ticker_routes(self.app, self.market, config,
                                                authorize=authorize)
        add_instrument_routes(self.app, instruments)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.app, access_log_class=RedactingAccessLogger,
                                     access_log=logging.getLogger("kite_sim.access"))
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ticker_root(self) -> str:
        path = self.hub.config.path
        return f"ws://127.0.0.1:{self.port}{'' if path == '/' else path}"

    def __enter__(self) -> SimServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
