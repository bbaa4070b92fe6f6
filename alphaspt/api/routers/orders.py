"""``/api/v1/orders``: recent orders and fills, newest first, by strategy, paginated."""

from __future__ import annotations

from fastapi import APIRouter

from alphaspt.api.metrics import ApiMetrics
from alphaspt.api.models import OrderRecord, Page
from alphaspt.api.routers import API_PREFIX
from alphaspt.api.routers.records import DEFAULT_LIMIT, Limit, Offset, StrategyFilter, validated
from alphaspt.core.cache import PortfolioCacheReader


def orders_router(reader: PortfolioCacheReader, metrics: ApiMetrics) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/orders", tags=["orders"])

    @router.get("", response_model=Page[OrderRecord], summary="Recent orders and fills")
    async def list_orders(
        strategy: StrategyFilter = None,
        offset: Offset = 0,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[OrderRecord]:
        total, raw = await reader.recent("order", strategy, offset, limit)
        items = validated(OrderRecord, raw, "order", metrics)
        return Page[OrderRecord](total=total, offset=offset, limit=limit, items=items)

    return router
