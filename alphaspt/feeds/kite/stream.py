"""Kite's ticker through the real ``kiteconnect.KiteTicker``, with a liveness watchdog.

Twisted's reactor is process-global and cannot be restarted, so this module runs it once
per process in a daemon thread (:func:`_reactor`) and never stops it; every connection is
created, subscribed and dropped on that thread (``callFromThread``). Ticks cross to the
caller through a bounded queue (``queue_size``; when full, the oldest are counted in
``dropped`` and lost: a market feed must not stall the socket).

Limits (Kite's): at most 3,000 instruments per connection and 3 connections per api key;
:func:`plan` refuses more with :class:`~alphaspt.exceptions.InvalidConfiguration`.

Watchdog: the Python ticker sends no pings and can go silently dead (ticks stop, the TCP
connection stays open, no ``on_close``). When a connection has received no frame at all
(ticks, heartbeats or text) for ``stall_timeout_s`` while the watchdog is active (during
NSE market hours by default), the connection is aborted; the client's reconnecting
factory reconnects (first retry after about ``reconnect_delay_s`` x 2.7) and
``KiteTicker`` re-sends the subscriptions and modes it remembers.

The access token is only ever in the ticker's URL; nothing here logs that URL.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any, Final, Literal

from kiteconnect import KiteTicker
from pydantic import BaseModel, ConfigDict, Field

from alphaspt.exceptions import InfrastructureUnavailable, InvalidConfiguration

log = logging.getLogger(__name__)
MAX_TOKENS_PER_CONNECTION: Final = 3000
MAX_CONNECTIONS: Final = 3
_IST: Final = timedelta(hours=5, minutes=30)
_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


class StreamConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str = Field(min_length=1)
    ticker_root: str = "wss://ws.kite.trade"
    mode: Literal["quote", "full"] = "quote"
    stall_timeout_s: float = Field(default=5.0, gt=0)
    watchdog: Literal["market-hours", "always", "off"] = "market-hours"
    tokens_per_connection: int = Field(default=MAX_TOKENS_PER_CONNECTION, ge=1,
                                       le=MAX_TOKENS_PER_CONNECTION)
    max_connections: int = Field(default=MAX_CONNECTIONS, ge=1, le=MAX_CONNECTIONS)
    queue_size: int = Field(default=50_000, ge=1)
    reconnect_delay_s: float = Field(default=0.5, gt=0)
    """Twisted's initial reconnect delay (each retry multiplies it by ~2.7, up to 60 s)."""


def nse_market_hours(now: float) -> bool:
    """Monday to Friday, 09:00 (pre-open) to 15:30 IST. Holidays count as open: a
    watchdog reconnect on a quiet day is harmless, a dead feed on a trading day is not."""
    ist = datetime.fromtimestamp(now, UTC) + _IST
    return ist.weekday() < 5 and dtime(9, 0) <= ist.time() < dtime(15, 30)


def plan(tokens: Sequence[int], per_connection: int = MAX_TOKENS_PER_CONNECTION,
         connections: int = MAX_CONNECTIONS) -> list[list[int]]:
    """Split ``tokens`` into at most ``connections`` chunks of at most ``per_connection``."""
    unique = list(dict.fromkeys(tokens))
    if len(unique) > per_connection * connections:
        raise InvalidConfiguration(
            f"{len(unique)} instruments exceed Kite's ticker limit of {connections} "
            f"connections x {per_connection} instruments = {per_connection * connections}")
    return [unique[i:i + per_connection] for i in range(0, len(unique), per_connection)]


def _reactor() -> Any:
    """The process's reactor, running in a daemon thread (started once, never stopped)."""
    global _reactor_thread
    from twisted.internet import reactor as installed

    reactor: Any = installed
    with _reactor_lock:
        if _reactor_thread is None:
            _reactor_thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False},
                name="kite-reactor", daemon=True)
            _reactor_thread.start()
    return reactor


@dataclass(eq=False)
class _Connection:
    index: int
    ticker: KiteTicker
    tokens: list[int]
    last_frame: float = field(default_factory=time.monotonic)
    opened: int = 0
    watchdog_drops: int = 0
    first: bool = True


class KiteStream:
    """Ticks of a set of instrument tokens; :meth:`get` hands them over as kiteconnect dicts
    (with ``received_ns``)."""

    def __init__(self, config: StreamConfig, access_token: str, *,
                 clock: Callable[[], float] = time.time,
                 market_hours: Callable[[float], bool] = nse_market_hours) -> None:
        self.config = config
        self._access_token = access_token
        self._clock = clock
        self._market_hours = market_hours
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(config.queue_size)
        self.connections: list[_Connection] = []
        self.dropped = 0
        self.failed: str | None = None
        self._watchdog: Any = None
        self._closed = False

    # ---- caller's side ----------------------------------------------------------------

    def start(self, tokens: Sequence[int]) -> None:
        chunks = plan(tokens, self.config.tokens_per_connection, self.config.max_connections)
        reactor = _reactor()
        for chunk in chunks:
            self._open(chunk)
        reactor.callFromThread(self._start_watchdog)

    def update(self, tokens: Sequence[int]) -> None:
        """Follow a new token set: unsubscribe what left, add the new ones where there is
        room (a new connection if needed); refuses a set beyond the limits, changing nothing."""
        wanted = list(dict.fromkeys(tokens))
        plan(wanted, self.config.tokens_per_connection, self.config.max_connections)
        keep = set(wanted)
        current = {t for c in self.connections for t in c.tokens}
        new = [t for t in wanted if t not in current]
        reactor = _reactor()
        for conn in self.connections:
            gone = [t for t in conn.tokens if t not in keep]
            if gone:
                conn.tokens = [t for t in conn.tokens if t in keep]
                reactor.callFromThread(self._unsubscribe, conn, gone)
        for conn in self.connections:
            room = self.config.tokens_per_connection - len(conn.tokens)
            if new and room > 0:
                add, new = new[:room], new[room:]
                conn.tokens.extend(add)
                reactor.callFromThread(self._subscribe, conn, add)
        for chunk in plan(new, self.config.tokens_per_connection, self.config.max_connections):
            self._open(chunk)

    def get(self, timeout: float) -> list[dict[str, Any]]:
        """The ticks received so far (waiting up to ``timeout`` for the first)."""
        if self.failed is not None:
            raise InfrastructureUnavailable(self.failed)
        out: list[dict[str, Any]] = []
        try:
            out.append(self._queue.get(timeout=timeout))
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        self._closed = True
        reactor = _reactor()
        if self._watchdog is not None:
            reactor.callFromThread(self._stop_watchdog)
        for conn in self.connections:
            reactor.callFromThread(conn.ticker.close, 1000, "closing")

    @property
    def opened(self) -> int:
        """Connections opened so far, reconnects included."""
        return sum(c.opened for c in self.connections)

    @property
    def watchdog_drops(self) -> int:
        return sum(c.watchdog_drops for c in self.connections)

    # ---- reactor thread ---------------------------------------------------------------

    def _open(self, tokens: list[int]) -> None:
        if len(self.connections) >= self.config.max_connections:
            raise InvalidConfiguration(
                f"Kite allows {self.config.max_connections} ticker connections per api key")
        ticker = KiteTicker(self.config.api_key, self._access_token,
                            root=self.config.ticker_root, reconnect_max_tries=300)
        conn = _Connection(len(self.connections) + 1, ticker, list(tokens))
        self.connections.append(conn)
        mode = self.config.mode

        def on_connect(ws: KiteTicker, response: Any) -> None:
            conn.opened += 1
            conn.last_frame = time.monotonic()
            log.info("kite ticker connection %d open (%d instruments, %s)", conn.index,
                     len(conn.tokens), "first" if conn.first else "reconnected")
            if conn.first:  # later connects: KiteTicker re-subscribes what it remembers
                conn.first = False
                if conn.tokens:
                    ws.subscribe(conn.tokens)
                    ws.set_mode(mode, conn.tokens)

        def on_message(ws: KiteTicker, payload: bytes, is_binary: bool) -> None:
            conn.last_frame = time.monotonic()

        def on_ticks(ws: KiteTicker, ticks: list[dict[str, Any]]) -> None:
            received = time.time_ns()
            for tick in ticks:
                tick["received_ns"] = received
                while True:
                    try:
                        self._queue.put_nowait(tick)
                        break
                    except queue.Full:  # keep the freshest: drop the oldest
                        try:
                            self._queue.get_nowait()
                        except queue.Empty:
                            continue
                        self.dropped += 1
                        if self.dropped % 1000 == 1:
                            log.warning("kite ticks dropped: the consumer is behind "
                                        "(%d so far)", self.dropped)

        def on_close(ws: KiteTicker, code: int | None, reason: Any) -> None:
            if not self._closed and self.failed is None:
                log.warning("kite ticker connection %d closed (%s); reconnecting",
                            conn.index, code)

        def on_error(ws: KiteTicker, code: int | None, reason: Any) -> None:
            if "(403" in str(reason):  # the upgrade refused: expired or invalid token
                self.failed = ("Kite refused the ticker's access token (HTTP 403): it "
                               "expired (06:00 IST) or is invalid; log in again "
                               "(alphaspt kite login)")
                ws.stop_retry()
                log.error("kite ticker connection %d: %s", conn.index, self.failed)
                return
            log.warning("kite ticker connection %d error: %s %s", conn.index, code, reason)

        def on_noreconnect(ws: KiteTicker) -> None:
            self.failed = (f"kite ticker connection {conn.index} gave up reconnecting "
                           f"to {self.config.ticker_root}")

        ticker.on_connect = on_connect
        ticker.on_message = on_message
        ticker.on_ticks = on_ticks
        ticker.on_close = on_close
        ticker.on_error = on_error
        ticker.on_noreconnect = on_noreconnect
        _reactor().callFromThread(self._connect, conn)

    def _connect(self, conn: _Connection) -> None:
        conn.ticker.connect()  # the reactor runs: this only starts connecting
        factory = conn.ticker.factory
        factory.initialDelay = self.config.reconnect_delay_s
        factory.resetDelay()

    def _subscribe(self, conn: _Connection, tokens: list[int]) -> None:
        if conn.ticker.is_connected():
            conn.ticker.subscribe(tokens)
            conn.ticker.set_mode(self.config.mode, tokens)
        elif not conn.first:  # remembered: the reconnect re-subscribes them
            for token in tokens:
                conn.ticker.subscribed_tokens[token] = self.config.mode
        # before the first connect, on_connect subscribes conn.tokens (already updated)

    def _unsubscribe(self, conn: _Connection, tokens: list[int]) -> None:
        if conn.ticker.is_connected():
            conn.ticker.unsubscribe(tokens)
        else:
            for token in tokens:
                conn.ticker.subscribed_tokens.pop(token, None)

    def _start_watchdog(self) -> None:
        from twisted.internet.task import LoopingCall

        self._watchdog = LoopingCall(self._check)
        self._watchdog.start(min(1.0, self.config.stall_timeout_s / 4), now=False)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()

    def _check(self) -> None:
        cfg = self.config
        if cfg.watchdog == "off" or self._closed:
            return
        if cfg.watchdog == "market-hours" and not self._market_hours(self._clock()):
            return
        now = time.monotonic()
        for conn in self.connections:
            silent = now - conn.last_frame
            if silent > cfg.stall_timeout_s and conn.ticker.is_connected():
                log.warning("kite ticker connection %d: no frame for %.1f s; reconnecting",
                            conn.index, silent)
                conn.watchdog_drops += 1
                conn.last_frame = now
                conn.ticker.ws.dropConnection(abort=True)
