"""``/api/v1/prices/{symbol}`` (the price chart) and ``/api/v1/workers`` (worker health)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query

from alphaspt.api.models import PriceHistory, PricePoint, Worker, WorkerList
from alphaspt.api.routers import API_PREFIX
from alphaspt.core.cache import PRICE_POINTS_LIMIT, PortfolioCacheReader
from alphaspt.core.specs import SYMBOL_PATTERN

Symbol = Annotated[str, Path(pattern=SYMBOL_PATTERN, max_length=30,
                             description="An NSE trading symbol.")]


def market_router(reader: PortfolioCacheReader) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["market"])

    @router.get("/prices/{symbol}", response_model=PriceHistory,
                summary="One price per second of exchange time (oldest first); empty if unknown")
    async def get_prices(
        symbol: Symbol,
        limit: Annotated[int, Query(ge=1, le=PRICE_POINTS_LIMIT)] = PRICE_POINTS_LIMIT,
    ) -> PriceHistory:
        points = await reader.prices(symbol, limit)
        return PriceHistory(symbol=symbol, points=[PricePoint(t=p.t, p=p.p) for p in points])

    @router.get("/workers", response_model=WorkerList,
                summary="Every worker's last heartbeat: ok, starting, restarting, failing, down")
    async def get_workers() -> WorkerList:
        now = time.time()
        items = []
        for w in await reader.workers():
            status, why = w.status(now)
            items.append(Worker(worker=w.worker, stage=w.stage, strategy=w.strategy,
                                status=status, why=why, lag=w.lag, starts=w.starts,
                                started_at=w.started_at, updated_at=w.updated_at))
        return WorkerList(items=items)

    return router
