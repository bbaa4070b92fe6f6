"""``/api/v1/portfolio``: totals over every strategy."""

from __future__ import annotations

from fastapi import APIRouter

from alphaspt.api.models import Portfolio
from alphaspt.api.routers import API_PREFIX
from alphaspt.core.cache import PortfolioCacheReader


def portfolio_router(reader: PortfolioCacheReader) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/portfolio", tags=["portfolio"])

    @router.get("", response_model=Portfolio, summary="Totals over every strategy")
    async def get_portfolio() -> Portfolio:
        return Portfolio.of(await reader.totals())

    return router
