"""Liveness and readiness: the only data endpoints without a token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from alphaspt.api.models import ErrorResponse, Health
from alphaspt.core.cache import PortfolioCacheReader


def health_router(reader: PortfolioCacheReader) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health, summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Health,
        summary="Redis (the read model) answers",
        responses={503: {"model": ErrorResponse, "description": "Redis is unreachable"}},
    )
    async def readyz() -> Health | JSONResponse:
        try:
            await reader.ping()
        except (RedisError, OSError):
            return JSONResponse(
                {"detail": "Redis is unreachable"}, status_code=503,
                headers={"Retry-After": "5"},
            )
        return Health(status="ready")

    return router
