"""``/api/v1/rejections``: recent risk rejections with their reasons, newest first."""

from __future__ import annotations

from fastapi import APIRouter

from alphaspt.api.metrics import ApiMetrics
from alphaspt.api.models import Page, RejectionRecord
from alphaspt.api.routers import API_PREFIX
from alphaspt.api.routers.records import DEFAULT_LIMIT, Limit, Offset, StrategyFilter, validated
from alphaspt.core.cache import PortfolioCacheReader


def rejections_router(reader: PortfolioCacheReader, metrics: ApiMetrics) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/rejections", tags=["rejections"])

    @router.get("", response_model=Page[RejectionRecord], summary="Recent risk rejections")
    async def list_rejections(
        strategy: StrategyFilter = None,
        offset: Offset = 0,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[RejectionRecord]:
        total, raw = await reader.recent("rejection", strategy, offset, limit)
        items = validated(RejectionRecord, raw, "rejection", metrics)
        return Page[RejectionRecord](total=total, offset=offset, limit=limit, items=items)

    return router
