"""Run the API's uvicorn server in a background thread (``alphaspt up``, tests, benchmarks).

:func:`alphaspt.api.app.run` serves in the foreground; this is for a process that has other
work to do on its main thread. The server gets its own event loop in its thread, so the
Redis client handed to :func:`~alphaspt.api.app.create_app` must not have been used on
another loop.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from alphaspt.api import logs as api_logs
from alphaspt.exceptions import ServerStartError

WS_IMPLEMENTATION = "websockets-sansio"


class BackgroundServer:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                 *, log_level: str = "warning") -> None:
        self.app = app
        api_logs.install()  # no query string (a token) in uvicorn's WebSocket lines
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, log_level=log_level, ws=WS_IMPLEMENTATION,
            lifespan="on", access_log=False, server_header=False, proxy_headers=False,
        ))
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        self._thread = threading.Thread(target=self._server.run, name="alphaspt-api",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerStartError(f"the API server did not start on {self.url}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"the API server did not start within {timeout}s")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
