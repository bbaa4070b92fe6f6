"""The simulator's aiohttp application: Kite Connect v3 REST at ``/`` (the client drops any
path in its ``root``), the JSON envelope ``{"status": "success", "data": ...}``, errors as
``{"status": "error", "message": ..., "error_type": ...}`` (always with ``error_type`` and
a ``Content-Type``, which kiteconnect needs), the ``Authorization: token key:token`` check,
Kite's rate limits (429 ``NetworkException``) and the fault hooks of :mod:`.faults`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from alphaspt.kite_sim.book import Book, SimError, instrument_token
from alphaspt.kite_sim.faults import Faults
from alphaspt.kite_sim.instruments import add_instrument_routes, nse_equities
from alphaspt.kite_sim.market import SimMarket
from alphaspt.kite_sim.ticker import TickerConfig, TickerHub, add_ticker_routes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIM_KEY: web.AppKey[Simulator] = web.AppKey("kite_sim")
_OPEN_PATHS = ("/session/token", "/connect/login", "/instruments")


@dataclass
class Simulator:
    book: Book
    faults: Faults = field(default_factory=Faults)
    redirect_url: str | None = None
    """The app's registered redirect URL: ``/connect/login`` sends the browser there with
    ``?request_token=...&action=login&status=success``."""
    symbols: tuple[str, ...] = ()
    """NSE equities listed in ``/instruments`` and streamed on the ticker (a random walk
    whose prices the book also matches against). Empty: REST only."""
    ticker: TickerConfig = field(default_factory=TickerConfig)
    hub: TickerHub | None = None
    """Set by :func:`build_app` when ``symbols`` are given (the ticker's test hooks)."""


def ok(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"status": "error", "message": message, "data": None,
                              "error_type": error_type}, status=status)


@web.middleware
async def _kite(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    failure = sim.faults.take_failure(request.path)
    if failure is not None:
        if failure.html:
            return web.Response(status=failure.status, content_type="text/html",
                                text="<html><body>502 Bad Gateway</body></html>")
        return error(failure.status, failure.error_type, failure.message)
    try:
        if not request.path.startswith(_OPEN_PATHS) and not _is_websocket(request):
            sim.book.authorize(request.headers.get("Authorization"))
        if request.path.startswith("/orders/") and request.method == "POST":
            sim.book.throttle(orders=True)
        elif not request.path.startswith(_OPEN_PATHS) and not _is_websocket(request):
            sim.book.throttle(orders=False)
        return await handler(request)
    except SimError as exc:
        return error(exc.status, exc.error_type, exc.message)
    except web.HTTPNotFound:
        return error(404, "GeneralException", f"Route not found: {request.path}")
    except web.HTTPMethodNotAllowed:
        return error(405, "GeneralException", f"Method not allowed: {request.method}")


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM_KEY]


async def login(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    if request.query.get("api_key") != sim.book.api_key:
        return web.Response(status=400, content_type="text/html", text="Invalid api_key")
    if sim.redirect_url is None:
        return web.Response(status=400, content_type="text/html", text="No redirect URL")
    token = sim.book.issue_request_token()
    query = {"request_token": token, "action": "login", "status": "success"}
    if "redirect_params" in request.query:
        query.update(dict(p.split("=", 1) for p in request.query["redirect_params"].split("&")
                          if "=" in p))
    sep = "&" if "?" in sim.redirect_url else "?"
    raise web.HTTPFound(sim.redirect_url + sep + urlencode(query))


async def session_create(request: web.Request) -> web.Response:
    form = await _form(request)
    data = _sim(request).book.create_session(form.get("api_key", ""),
                                             form.get("request_token", ""),
                                             form.get("checksum", ""))
    return ok(data)


async def session_delete(request: web.Request) -> web.Response:
    book = _sim(request).book
    if request.query.get("api_key") != book.api_key:
        raise SimError(403, "TokenException", "Invalid `api_key`.")
    book.invalidate(request.query.get("access_token", ""))
    return ok(True)


async def profile(request: web.Request) -> web.Response:
    book = _sim(request).book
    return ok({"user_id": book.user_id, "user_type": "individual", "email": "sim@example.com",
               "user_name": "Kite Simulator", "user_shortname": "Sim", "broker": "ZERODHA",
               "exchanges": ["NSE"], "products": ["CNC", "MIS", "NRML"],
               "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "avatar_url": None,
               "meta": {"demat_consent": ""}})


async def place(request: web.Request) -> web.Response:
    sim = _sim(request)
    form = await _form(request)
    order_id = sim.book.place(request.match_info["variety"], form)
    delay = sim.faults.take_timeout()
    if delay is not None:
        await asyncio.sleep(delay)  # the order exists; the client times out first
    return ok({"order_id": order_id})


async def modify(request: web.Request) -> web.Response:
    form = await _form(request)
    info = request.match_info
    return ok({"order_id": _sim(request).book.modify(info["variety"], info["order_id"], form)})


async def cancel(request: web.Request) -> web.Response:
    info = request.match_info
    return ok({"order_id": _sim(request).book.cancel(info["variety"], info["order_id"])})


async def orders(request: web.Request) -> web.Response:
    return ok(_sim(request).book.order_list())


async def order_history(request: web.Request) -> web.Response:
    return ok(_sim(request).book.order_history(request.match_info["order_id"]))


async def trades(request: web.Request) -> web.Response:
    return ok(_sim(request).book.trade_list())


async def order_trades(request: web.Request) -> web.Response:
    return ok(_sim(request).book.trade_list(request.match_info["order_id"]))


async def positions(request: web.Request) -> web.Response:
    return ok(_sim(request).book.positions())


async def holdings(request: web.Request) -> web.Response:
    return ok([])


async def margins(request: web.Request) -> web.Response:
    data = _sim(request).book.margins()
    segment = request.match_info.get("segment")
    if segment is None:
        return ok(data)
    if segment not in data:
        raise SimError(400, "InputException", f"Invalid segment: {segment}")
    return ok(data[segment])


async def ltp(request: web.Request) -> web.Response:
    book = _sim(request).book
    out: dict[str, Any] = {}
    for item in request.query.getall("i", []):
        _, _, symbol = item.partition(":")
        if symbol:
            out[item] = {"instrument_token": instrument_token(symbol),
                         "last_price": book.price(symbol)}
    return ok(out)


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(middlewares=[_kite])
    app[SIM_KEY] = sim
    app.add_routes([
        web.get("/connect/login", login),
        web.post("/session/token", session_create),
        web.delete("/session/token", session_delete),
        web.get("/user/profile", profile),
        web.get("/user/margins", margins),
        web.get("/user/margins/{segment}", margins),
        web.post("/orders/{variety}", place),
        web.put("/orders/{variety}/{order_id}", modify),
        web.delete("/orders/{variety}/{order_id}", cancel),
        web.get("/orders", orders),
        web.get("/orders/{order_id}", order_history),
        web.get("/orders/{order_id}/trades", order_trades),
        web.get("/trades", trades),
        web.get("/portfolio/positions", positions),
        web.get("/portfolio/holdings", holdings),
        web.get("/quote/ltp", ltp),
    ])
    if sim.symbols:
        instruments = nse_equities(sim.symbols)
        market = SimMarket(instruments)
        market.listeners.append(sim.book.set_price)  # the book fills at the ticker's prices
        add_instrument_routes(app, instruments)

        def authorize(api_key: str, access_token: str) -> bool:
            try:
                sim.book.authorize(f"token {api_key}:{access_token}")
            except SimError:
                return False
            return True

        hub = add_ticker_routes(app, market, sim.ticker, authorize=authorize)
        sim.book.listeners.append(lambda m: hub.push_order_update(m["data"]))
        sim.hub = hub
    return app
