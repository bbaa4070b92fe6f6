"""The Redis read model: the portfolio manager writes it, the API reads it.

Layout (all keys under an optional prefix, default none):

``portfolio:<strategy>`` (hash), the seed's layout plus summary fields::

    position:<SYMBOL>        net quantity (int, negative when short)
    avg_price:<SYMBOL>       average price of the open position
    last_price:<SYMBOL>      latest traded price used for marking
    realised_pnl:<SYMBOL>    realised P&L of the symbol (before charges)
    unrealised_pnl:<SYMBOL>  unrealised P&L of the open position
    realised_pnl unrealised_pnl charges net_pnl gross_exposure orders fills
    rejections mode state updated_at

``portfolio:total`` (hash): the summary fields summed over strategies.
``strategies`` (set): strategy names present.
``orders:recent`` and ``orders:recent:<strategy>`` (lists, newest first, capped):
    JSON order/fill records.
``rejections:recent`` and ``rejections:recent:<strategy>`` (lists, newest first, capped):
    JSON risk rejections.
``pnl:<strategy>`` (list, oldest first, capped): JSON ``{"t": epoch_s, "pnl": net}``
    points for the live chart.
``prices:<symbol>`` (list, oldest first, capped at ``PRICE_POINTS_LIMIT``): JSON
    ``{"t": exchange epoch_s, "p": price}``, one point per symbol per second of exchange
    time, for the price chart.
``workers:<worker>`` (hash) and ``workers`` (set): each worker's last heartbeat
    (:class:`alphaspt.core.views.WorkerView`'s fields), written every 2 s by the worker.
Channel ``alphaspt:updates``: JSON ``{"type": "portfolio"|"order"|"rejection", ...}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import redis
import redis.asyncio as aioredis

from alphaspt.core.views import (
    SUMMARY_FIELDS,
    PositionView,
    PricePoint,
    StrategyView,
    TotalsView,
    WorkerView,
    totals_of,
)

UPDATES_CHANNEL: Final = "alphaspt:updates"
RECENT_LIMIT: Final = 1000
PNL_POINTS_LIMIT: Final = 2000
PRICE_POINTS_LIMIT: Final = 2000

__all__ = [
    "PortfolioCacheReader",
    "PortfolioCacheWriter",
    "PositionView",
    "StrategyView",
    "TotalsView",
    "parse_strategy",
    "totals_of",
]


def portfolio_key(strategy: str) -> str:
    return f"portfolio:{strategy}"


def _strategy_mapping(view: StrategyView) -> dict[Any, Any]:
    fields: dict[Any, Any] = {
        "mode": view.mode,
        "state": view.state,
        "updated_at": repr(view.updated_at),
        "risk_profile": view.risk_profile,
        "kill_switch": "1" if view.kill_switch else "0",
    }
    if view.max_daily_loss is not None:
        fields["limit:max_daily_loss"] = repr(view.max_daily_loss)
    if view.max_gross_exposure is not None:
        fields["limit:max_gross_exposure"] = repr(view.max_gross_exposure)
    for name in SUMMARY_FIELDS:
        fields[name] = str(getattr(view, name))
    for p in view.positions:
        fields[f"position:{p.symbol}"] = str(p.quantity)
        fields[f"avg_price:{p.symbol}"] = repr(p.avg_price)
        fields[f"last_price:{p.symbol}"] = repr(p.last_price)
        fields[f"realised_pnl:{p.symbol}"] = repr(p.realised_pnl)
        fields[f"unrealised_pnl:{p.symbol}"] = repr(p.unrealised_pnl)
    return fields


def parse_strategy(name: str, raw: Mapping[str, str]) -> StrategyView:
    """Build a view from a ``portfolio:<strategy>`` hash (as decoded strings)."""
    symbols = sorted(k.split(":", 1)[1] for k in raw if k.startswith("position:"))
    positions = tuple(
        PositionView(
            symbol=s,
            quantity=int(raw[f"position:{s}"]),
            avg_price=float(raw.get(f"avg_price:{s}", 0.0)),
            last_price=float(raw.get(f"last_price:{s}", 0.0)),
            realised_pnl=float(raw.get(f"realised_pnl:{s}", 0.0)),
            unrealised_pnl=float(raw.get(f"unrealised_pnl:{s}", 0.0)),
        )
        for s in symbols
    )
    return StrategyView(
        name=name,
        mode=raw.get("mode", "Paper"),
        state=raw.get("state", "Running"),
        positions=positions,
        realised_pnl=float(raw.get("realised_pnl", 0.0)),
        unrealised_pnl=float(raw.get("unrealised_pnl", 0.0)),
        charges=float(raw.get("charges", 0.0)),
        net_pnl=float(raw.get("net_pnl", 0.0)),
        gross_exposure=float(raw.get("gross_exposure", 0.0)),
        orders=int(raw.get("orders", 0)),
        fills=int(raw.get("fills", 0)),
        rejections=int(raw.get("rejections", 0)),
        updated_at=float(raw.get("updated_at", 0.0)),
        risk_profile=raw.get("risk_profile", ""),
        max_daily_loss=_optional_float(raw.get("limit:max_daily_loss")),
        max_gross_exposure=_optional_float(raw.get("limit:max_gross_exposure")),
        kill_switch=raw.get("kill_switch") == "1",
    )


def _optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _recent_key(kind: str) -> str:
    """The capped list of a record kind: rejections apart, orders and fills together."""
    return "rejections:recent" if kind == "rejection" else "orders:recent"


class PortfolioCacheWriter:
    """Synchronous writer used by the portfolio manager (a sync Kafka loop)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @classmethod
    def from_url(cls, url: str) -> PortfolioCacheWriter:
        return cls(redis.Redis.from_url(url, decode_responses=True))

    def write_snapshot(self, views: Sequence[StrategyView], *, publish: bool = True) -> None:
        """Replace every given strategy's hash and the totals atomically (MULTI/EXEC)."""
        now = time.time()
        pipe = self._r.pipeline(transaction=True)
        for view in views:
            key = portfolio_key(view.name)
            pipe.delete(key)
            pipe.hset(key, mapping=_strategy_mapping(view))
            pipe.sadd("strategies", view.name)
            pipe.rpush(f"pnl:{view.name}", json.dumps({"t": now, "pnl": view.net_pnl}))
            pipe.ltrim(f"pnl:{view.name}", -PNL_POINTS_LIMIT, -1)
        totals = totals_of(views)
        pipe.delete("portfolio:total")
        total_fields: dict[Any, Any] = {
            k: str(v) for k, v in msgspec.structs.asdict(totals).items()
        }
        pipe.hset("portfolio:total", mapping=total_fields)
        if publish:
            pipe.publish(UPDATES_CHANNEL, json.dumps({
                "type": "portfolio",
                "strategies": [msgspec.to_builtins(v) for v in views],
                "totals": msgspec.to_builtins(totals),
            }))
        pipe.execute()

    def prices(self, points: Sequence[tuple[str, PricePoint]]) -> None:
        """Append price points (``(symbol, point)``, oldest first) to the capped lists."""
        if not points:
            return
        pipe = self._r.pipeline(transaction=False)
        for symbol in {s for s, _ in points}:
            pipe.rpush(f"prices:{symbol}", *(
                msgspec.json.encode(p).decode() for s, p in points if s == symbol))
            pipe.ltrim(f"prices:{symbol}", -PRICE_POINTS_LIMIT, -1)
        pipe.execute()

    def heartbeat(self, view: WorkerView, *, first: bool) -> None:
        """Write a worker's heartbeat; ``first`` counts a new process under its id."""
        key = f"workers:{view.worker}"
        fields: dict[Any, Any] = {k: json_field(v) for k, v in msgspec.structs.asdict(view).items()
                  if k != "starts"}
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)
        if first:
            pipe.hincrby(key, "starts", 1)
        pipe.sadd("workers", view.worker)
        pipe.execute()

    def record(self, kind: str, strategy: str, record: Mapping[str, Any]) -> None:
        """Append an order/fill (``kind='order'``) or a rejection to the recent lists."""
        body = json.dumps({"type": kind, "strategy": strategy, **record})
        pipe = self._r.pipeline(transaction=True)
        base = _recent_key(kind)
        for key in (base, f"{base}:{strategy}"):
            pipe.lpush(key, body)
            pipe.ltrim(key, 0, RECENT_LIMIT - 1)
        pipe.publish(UPDATES_CHANNEL, body)
        pipe.execute()


class PortfolioCacheReader:
    """Async reader used by the API. Raises ``redis.exceptions.ConnectionError`` when down."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._r = client

    async def ping(self) -> bool:
        return bool(await self._r.ping())

    async def strategy_names(self) -> list[str]:
        names = await self._r.smembers("strategies")
        return sorted(str(n) for n in names)

    async def strategy(self, name: str) -> StrategyView | None:
        raw = await self._r.hgetall(portfolio_key(name))
        return parse_strategy(name, {str(k): str(v) for k, v in raw.items()}) if raw else None

    async def strategies(self) -> list[StrategyView]:
        views = []
        for name in await self.strategy_names():
            view = await self.strategy(name)
            if view is not None:
                views.append(view)
        return views

    async def totals(self) -> TotalsView:
        raw = await self._r.hgetall("portfolio:total")
        if not raw:
            return TotalsView()
        return msgspec.convert(raw, TotalsView, strict=False)

    async def recent(self, kind: str, strategy: str | None, offset: int, limit: int
                     ) -> tuple[int, list[dict[str, Any]]]:
        base = _recent_key(kind)
        key = f"{base}:{strategy}" if strategy else base
        total = int(await self._r.llen(key))
        raw = await self._r.lrange(key, offset, offset + limit - 1)
        return total, [json.loads(r) for r in raw]

    async def prices(self, symbol: str, limit: int = PRICE_POINTS_LIMIT) -> list[PricePoint]:
        raw = await self._r.lrange(f"prices:{symbol}", -limit, -1)
        return [msgspec.json.decode(r, type=PricePoint) for r in raw]

    async def workers(self) -> list[WorkerView]:
        """Every worker that has sent a heartbeat (bounded by the deployed workers)."""
        views = []
        for name in sorted(str(n) for n in await self._r.smembers("workers")):
            raw = await self._r.hgetall(f"workers:{name}")
            if raw:
                views.append(msgspec.convert(
                    {str(k): json.loads(v) for k, v in raw.items()}, WorkerView))
        return views

    async def pnl_history(self, strategy: str, limit: int = PNL_POINTS_LIMIT
                          ) -> list[dict[str, float]]:
        raw = await self._r.lrange(f"pnl:{strategy}", -limit, -1)
        return [json.loads(r) for r in raw]


def json_field(value: Any) -> str:
    """A hash field as JSON text, so the reader gets types back (``null``, bools, numbers)."""
    return json.dumps(value)
