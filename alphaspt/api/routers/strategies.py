"""``/api/v1/strategies``: every strategy's state, positions and P&L, P&L history and
round trips."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query

from alphaspt.api.models import PnlHistory, PnlPoint, RoundTrip, Strategy, StrategyList, Trades
from alphaspt.api.routers import API_PREFIX
from alphaspt.core.cache import PNL_POINTS_LIMIT, RECENT_LIMIT, PortfolioCacheReader
from alphaspt.core.specs import NAME_PATTERN
from alphaspt.portfolio.roundtrips import round_trips, trade_stats

StrategyName = Annotated[
    str,
    Path(pattern=NAME_PATTERN, max_length=253, description="The TradingStrategy's name."),
]


def strategies_router(reader: PortfolioCacheReader) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/strategies", tags=["strategies"])

    @router.get("", response_model=StrategyList, summary="All strategies")
    async def list_strategies() -> StrategyList:
        return StrategyList(items=[Strategy.of(v) for v in await reader.strategies()])

    @router.get(
        "/{name}",
        response_model=Strategy,
        summary="One strategy: positions, realised and unrealised P&L, charges, state",
        responses={404: {"description": "No such strategy in the read model"}},
    )
    async def get_strategy(name: StrategyName) -> Strategy:
        view = await reader.strategy(name)
        if view is None:
            raise HTTPException(status_code=404, detail=f"strategy {name!r} not found")
        return Strategy.of(view)

    @router.get(
        "/{name}/pnl",
        response_model=PnlHistory,
        summary="Net P&L over time (oldest first), for the chart",
        responses={404: {"description": "No such strategy in the read model"}},
    )
    async def get_pnl(
        name: StrategyName,
        limit: Annotated[int, Query(ge=1, le=PNL_POINTS_LIMIT)] = PNL_POINTS_LIMIT,
    ) -> PnlHistory:
        points = await reader.pnl_history(name, limit)
        if not points and await reader.strategy(name) is None:
            raise HTTPException(status_code=404, detail=f"strategy {name!r} not found")
        return PnlHistory(
            strategy=name,
            points=[PnlPoint(t=float(p["t"]), pnl=float(p["pnl"])) for p in points],
        )

    @router.get(
        "/{name}/trades",
        response_model=Trades,
        summary="Closed round trips (FIFO) from the recent fills, newest first, and win rate",
        responses={404: {"description": "No such strategy in the read model"}},
    )
    async def get_trades(name: StrategyName) -> Trades:
        if await reader.strategy(name) is None:
            raise HTTPException(status_code=404, detail=f"strategy {name!r} not found")
        _, records = await reader.recent("order", name, 0, RECENT_LIMIT)
        # Exchange time (what the price chart shows) where recorded, else ingest time.
        fills = [
            {**r, "ts": int(r.get("exchange_ts") or r["ts"])} for r in reversed(records)
            if r.get("type") == "fill" and isinstance(r.get("ts"), int | float)
        ]
        trips = round_trips(fills)
        stats = trade_stats(trips)
        return Trades(
            strategy=name, fills=len(fills), round_trips=stats.round_trips, wins=stats.wins,
            win_rate=stats.win_rate, gross_pnl=stats.gross_pnl,
            items=[RoundTrip.model_validate(msgspec.to_builtins(t)) for t in reversed(trips)],
        )

    return router
