"""Run the simulator: in a background thread (tests, ``alphaspt up --kite-sim``) or in the
foreground (``alphaspt kite-sim``). One port serves REST and the ticker WebSocket (``/``)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from alphaspt.kite_sim.app import Simulator, build_app


class SimServer:
    """The simulator on ``host:port`` (0: a free port) in a thread with its own loop."""

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def api_root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ticker_root(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def _start(self) -> None:
        self._runner = web.AppRunner(build_app(self.sim), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        if self._runner is not None:
            loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self._main, name="kite-sim", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
