"""The simulator's ticker WebSocket: what ``kiteconnect.KiteTicker`` connects to.

``add_ticker_routes(app, market)`` serves ``GET /?api_key=…&access_token=…`` like
``wss://ws.kite.trade`` (point the client's ``root`` at ``ws://host:port``; another
``TickerConfig.path`` such as ``/ws`` gives ``ws://host:port/ws``) and returns the
:class:`TickerHub` that tests and the order book drive. Faithful to
``/work/shared/kite-protocol.md`` §5:

- upgrade refused with HTTP 403 for a missing or rejected token, 429 for a connection
  beyond ``max_connections`` (3) per api_key;
- text control messages ``{"a": "subscribe"|"unsubscribe", "v": [tokens]}`` and
  ``{"a": "mode", "v": [mode, [tokens]]}``; a bare subscribe streams ``quote``; at most
  ``max_tokens`` (3,000) per connection, the excess refused with
  ``{"type": "error", "data": …}``; malformed messages get the same error and change nothing;
- binary frames every ``interval_s``: one packet (8/44/184 bytes, indices 28/32) per
  subscribed instrument; a snapshot right after a subscribe or mode change; a 1-byte
  heartbeat every ``heartbeat_s`` while there is nothing to send;
- order updates ``{"type": "order", "data": …}`` on every open connection of the user,
  fire and forget (:meth:`TickerHub.push_order_update`).

Fault hooks: :meth:`TickerHub.stall` (connections stay open, nothing at all is sent: the
silent-dead state of the real service), :meth:`TickerHub.drop_order_updates`,
:meth:`TickerHub.reorder_order_updates`, :meth:`TickerHub.disconnect`.

Bounds: ``max_connections`` per api_key, ``max_tokens`` per connection, ``max_queued``
outgoing messages per connection (a client that falls further behind is closed with 1011,
as a slow consumer), ``reorder`` window held updates.

Access tokens arrive in the URL: never log ``request.query``/``path_qs``; run the app with
:class:`RedactingAccessLogger`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractAccessLogger

from alphaspt.kite_sim.packets import HEARTBEAT, MODES, Mode, Quote, encode_frame, encode_packet

log = logging.getLogger(__name__)
MAX_FRAME_PACKETS: Final = 0xFFFF


class QuoteSource(Protocol):
    """What the ticker streams: :class:`alphaspt.kite_sim.market.SimMarket` is one."""

    def quote(self, instrument_token: int) -> Quote | None: ...

    def step(self) -> dict[int, Quote]: ...


@dataclass(frozen=True)
class TickerConfig:
    path: str = "/"
    interval_s: float = 1.0
    """Seconds between market steps (Kite: about one packet a second per instrument)."""
    heartbeat_s: float = 1.0
    max_connections: int = 3
    max_tokens: int = 3000
    max_queued: int = 256


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log without the query string (where Kite clients put the access token)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.3fs", request.method, request.path, response.status, time)


@dataclass(eq=False)
class _Connection:
    api_key: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[bytes | str]
    tokens: dict[int, Mode] = field(default_factory=dict)
    silent: bool = False
    last_sent: float = field(default_factory=time.monotonic)


def _frames(subs: dict[int, Mode], quote_of: Callable[[int], Quote | None]) -> list[bytes]:
    """Binary frames with one packet per subscribed token that has a quote."""
    packets = []
    for token, mode in subs.items():
        quote = quote_of(token)
        if quote is not None:
            packets.append(encode_packet(quote, mode))
    return [encode_frame(packets[i:i + MAX_FRAME_PACKETS])
            for i in range(0, len(packets), MAX_FRAME_PACKETS)]


def _encode_all(subs: list[tuple[_Connection, dict[int, Mode]]],
                quotes: dict[int, Quote]) -> list[tuple[_Connection, list[bytes]]]:
    return [(conn, _frames(tokens, quotes.get)) for conn, tokens in subs]


def _error(text: str) -> str:
    return json.dumps({"type": "error", "data": text})


def _tokens(value: object) -> list[int]:
    if not isinstance(value, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in value):
        raise ValueError("v must be a list of instrument tokens")
    return value


class TickerHub:
    """The ticker's state and its test hooks (thread-safe: hooks may be called from any
    thread; they act on the server's event loop)."""

    def __init__(self, market: QuoteSource, config: TickerConfig,
                 authorize: Callable[[str, str], bool] | None = None) -> None:
        self.market = market
        self.config = config
        self._authorize = authorize or (lambda api_key, token: bool(api_key and token))
        self.connections: list[_Connection] = []
        self.accepted = 0
        """Connections accepted so far (a reconnect is a new one)."""
        self.refused: dict[int, int] = {}
        """Refused upgrades by HTTP status."""
        self.subscribe_messages = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._stall_new = False
        self._drop = 0
        self._reorder = 0
        self._held: list[tuple[str | None, str]] = []
        self._tasks: set[asyncio.Future[object]] = set()

    # ---- hooks ------------------------------------------------------------------------

    def subscribed(self) -> list[dict[int, Mode]]:
        """Each open connection's subscriptions (token → mode)."""
        return [dict(c.tokens) for c in list(self.connections)]

    def stall(self, *, new_connections: bool = False) -> int:
        """Open connections go silent (no ticks, no heartbeats, no order updates) while
        staying open; with ``new_connections`` later ones too, until :meth:`resume`."""
        with self._lock:
            self._stall_new = new_connections
            for conn in self.connections:
                conn.silent = True
            return len(self.connections)

    def resume(self) -> None:
        with self._lock:
            self._stall_new = False
            for conn in self.connections:
                conn.silent = False

    def drop_order_updates(self, count: int) -> None:
        """The next ``count`` order updates are never sent."""
        with self._lock:
            self._drop += count

    def reorder_order_updates(self, window: int) -> None:
        """Order updates are held until ``window`` are pending, then sent newest first."""
        with self._lock:
            self._reorder = window

    def push_order_update(self, data: dict[str, Any], *, api_key: str | None = None) -> None:
        """Send ``{"type": "order", "data": data}`` to every open connection (of
        ``api_key`` if given). Fire and forget: nothing is kept for a later connection."""
        message = json.dumps({"type": "order", "data": data}, default=str)
        with self._lock:
            if self._drop > 0:
                self._drop -= 1
                return
            if self._reorder > 1:
                self._held.append((api_key, message))
                if len(self._held) < self._reorder:
                    return
                batch, self._held = list(reversed(self._held)), []
            else:
                batch = [(api_key, message)]
        for key, text in batch:
            self._call(self._broadcast, key, text)

    def flush_order_updates(self) -> None:
        """Send the updates a reorder window still holds (newest first)."""
        with self._lock:
            batch, self._held = list(reversed(self._held)), []
        for key, text in batch:
            self._call(self._broadcast, key, text)

    def disconnect(self, code: int = 1011) -> None:
        """Close every connection (the client sees a drop and reconnects)."""
        for conn in list(self.connections):
            self._call(lambda c=conn: self._spawn(c.ws.close(code=code)))

    # ---- internals --------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _send(self, conn: _Connection, message: bytes | str) -> None:
        if conn.silent:
            return
        try:
            conn.queue.put_nowait(message)
            conn.last_sent = time.monotonic()
        except asyncio.QueueFull:
            log.warning("ticker client too slow (%d messages queued): closing it",
                        self.config.max_queued)
            conn.silent = True
            self._spawn(conn.ws.close(code=1011, message=b"slow consumer"))

    def _broadcast(self, api_key: str | None, text: str) -> None:
        for conn in list(self.connections):
            if api_key is None or conn.api_key == api_key:
                self._send(conn, text)

    def _frame(self, conn: _Connection, tokens: list[int]) -> None:
        """Send a snapshot of ``tokens`` (their latest quotes) in their modes."""
        subs = {t: conn.tokens[t] for t in tokens if t in conn.tokens}
        for frame in _frames(subs, self.market.quote):
            self._send(conn, frame)

    def _control(self, conn: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
            if not isinstance(message, dict):
                raise ValueError("a control message is a JSON object")
            action, value = message.get("a"), message.get("v")
            if action == "subscribe":
                self.subscribe_messages += 1
                added = []
                refused = 0
                for token in _tokens(value):
                    if token in conn.tokens:
                        continue
                    if len(conn.tokens) >= self.config.max_tokens:
                        refused += 1
                        continue
                    conn.tokens[token] = "quote"
                    added.append(token)
                if refused:
                    self._send(conn, _error(
                        f"{refused} instruments not subscribed: at most "
                        f"{self.config.max_tokens} instruments per connection"))
                self._frame(conn, added)
            elif action == "unsubscribe":
                for token in _tokens(value):
                    conn.tokens.pop(token, None)
            elif action == "mode":
                if not (isinstance(value, list) and len(value) == 2 and value[0] in MODES):
                    raise ValueError(f"v must be [mode, [tokens]] with mode one of {MODES}")
                mode: Mode = value[0]
                changed = [t for t in _tokens(value[1]) if t in conn.tokens]
                for token in changed:
                    conn.tokens[token] = mode
                self._frame(conn, changed)
            else:
                raise ValueError(f"unknown action {action!r}")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self._send(conn, _error(f"invalid message: {exc}"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        api_key = request.query.get("api_key", "")
        token = request.query.get("access_token", "")
        if not self._authorize(api_key, token):
            self.refused[403] = self.refused.get(403, 0) + 1
            return web.Response(status=403, text="Invalid `api_key` or `access_token`.")
        ws = web.WebSocketResponse(autoping=True)
        conn = _Connection(api_key, ws, asyncio.Queue(self.config.max_queued))
        with self._lock:  # the slot is taken before the handshake's await
            if sum(c.api_key == api_key
                   for c in self.connections) >= self.config.max_connections:
                self.refused[429] = self.refused.get(429, 0) + 1
                return web.Response(status=429, text="Too many connections")
            conn.silent = self._stall_new
            self.connections.append(conn)
        writer: asyncio.Future[None] | None = None
        try:
            await ws.prepare(request)
            with self._lock:
                self.accepted += 1
            writer = asyncio.ensure_future(self._write(conn))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._control(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self._send(conn, _error("binary messages are not understood"))
        finally:
            with self._lock:
                if conn in self.connections:
                    self.connections.remove(conn)
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        return ws

    async def _write(self, conn: _Connection) -> None:
        while True:
            message = await conn.queue.get()
            try:
                if isinstance(message, bytes):
                    await conn.ws.send_bytes(message)
                else:
                    await conn.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return

    async def _pump(self) -> None:
        cfg = self.config
        pause = min(cfg.interval_s, cfg.heartbeat_s)
        next_step = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_step:
                next_step = now + cfg.interval_s
                # stepping and encoding thousands of instruments takes a while: off the
                # event loop, so handshakes, control messages and order updates go on
                quotes = await asyncio.to_thread(self.market.step)
                subs = [(c, dict(c.tokens)) for c in list(self.connections)
                        if c.tokens and not c.silent]
                encoded = await asyncio.to_thread(_encode_all, subs, quotes)
                for conn, frames in encoded:
                    for frame in frames:
                        self._send(conn, frame)
            for conn in list(self.connections):
                if time.monotonic() - conn.last_sent >= cfg.heartbeat_s:
                    self._send(conn, HEARTBEAT)
            await asyncio.sleep(pause)

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        pump = asyncio.ensure_future(self._pump())
        yield
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def close_all(self, app: web.Application) -> None:
        """On shutdown: close every connection (1001, going away)."""
        for conn in list(self.connections):
            await conn.ws.close(code=1001)


def add_ticker_routes(app: web.Application, market: QuoteSource,
                      config: TickerConfig | None = None, *,
                      authorize: Callable[[str, str], bool] | None = None) -> TickerHub:
    """Serve the ticker at ``config.path`` on ``app``; ``authorize(api_key, access_token)``
    decides the upgrade (default: any non-empty pair). Returns the hub (test hooks)."""
    hub = TickerHub(market, config or TickerConfig(), authorize)
    app.router.add_get(hub.config.path, hub.handle)
    app.cleanup_ctx.append(hub.lifespan)
    app.on_shutdown.append(hub.close_all)
    return hub
