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
    StrategyView,
    TotalsView,
    totals_of,
)

UPDATES_CHANNEL: Final = "alphaspt:updates"
RECENT_LIMIT: Final = 1000
PNL_POINTS_LIMIT: Final = 2000

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
    }
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
    )


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

    async def pnl_history(self, strategy: str, limit: int = PNL_POINTS_LIMIT
                          ) -> list[dict[str, float]]:
        raw = await self._r.lrange(f"pnl:{strategy}", -limit, -1)
        return [json.loads(r) for r in raw]
