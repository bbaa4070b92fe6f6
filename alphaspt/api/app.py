"""The read API and dashboard: one place wires everything (:func:`create_app`).

The service reads Redis only (the read model written by the portfolio manager); it never
talks to PostgreSQL or Kafka. ``alphaspt api`` calls :func:`run`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from alphaspt.api import logs as api_logs
from alphaspt.api.auth import TokenAuth
from alphaspt.api.errors import install_error_handlers
from alphaspt.api.metrics import ApiMetrics, MetricsMiddleware
from alphaspt.api.models import ErrorResponse
from alphaspt.api.routers.dashboard import STATIC_DIR, dashboard_router, locate_chart_library
from alphaspt.api.routers.health import health_router
from alphaspt.api.routers.market import market_router
from alphaspt.api.routers.metrics import metrics_router
from alphaspt.api.routers.orders import orders_router
from alphaspt.api.routers.portfolio import portfolio_router
from alphaspt.api.routers.rejections import rejections_router
from alphaspt.api.routers.strategies import strategies_router
from alphaspt.api.routers.stream import stream_router
from alphaspt.api.stream import StreamSettings, UpdateBroadcaster
from alphaspt.core.cache import PortfolioCacheReader
from alphaspt.core.config import ApiConfig, Settings
from alphaspt.exceptions import InvalidConfiguration

log = logging.getLogger(__name__)



def _version() -> str:
    try:
        return version("alphaspt")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"

_PROTECTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    503: {"model": ErrorResponse, "description": "Redis (the read model) is unreachable"},
}


def make_redis_client(url: str) -> aioredis.Redis:
    """An asyncio Redis client that fails fast (→ 503) and reconnects by itself."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        health_check_interval=15,
    )


def create_app(
    config: ApiConfig,
    redis_client: aioredis.Redis,
    *,
    stream: StreamSettings | None = None,
    locate_chart: Callable[[], Path | None] = locate_chart_library,
) -> FastAPI:
    """The API. ``redis_client`` must decode responses (``decode_responses=True``).

    ``locate_chart`` finds the Lightweight Charts JS (default: in the installed package,
    see :func:`locate_chart_library`); the page shows a clear message when it is missing.
    """
    auth = TokenAuth(config.token)
    metrics = ApiMetrics()
    reader = PortfolioCacheReader(redis_client)
    broadcaster = UpdateBroadcaster(redis_client, stream or StreamSettings(), metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await broadcaster.stop()

    app = FastAPI(
        title="AlphasPT read API",
        version=_version(),
        description=(
            "Strategies, positions, P&L, orders and risk rejections from the Redis read "
            "model. Every endpoint except /healthz and /readyz needs "
            "`Authorization: Bearer <token>`."
        ),
        docs_url=None,  # Swagger UI / ReDoc load their JavaScript from a CDN
        redoc_url=None,
        openapi_url=None,  # served below, behind the token
        lifespan=lifespan,
    )
    install_error_handlers(app, metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization"],
            allow_credentials=False,
        )

    protected = [Depends(auth)]
    for router in (
        strategies_router(reader),
        portfolio_router(reader),
        market_router(reader),
        orders_router(reader, metrics),
        rejections_router(reader, metrics),
    ):
        app.include_router(router, dependencies=protected, responses=_PROTECTED_RESPONSES)
    # The WebSocket route checks the token itself (browsers cannot send headers).
    app.include_router(stream_router(auth, broadcaster))
    app.include_router(health_router(reader))
    app.include_router(metrics_router(metrics), dependencies=protected,
                       responses={401: _PROTECTED_RESPONSES[401]})

    @app.get("/openapi.json", include_in_schema=False, dependencies=protected)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    app.include_router(dashboard_router(locate_chart()))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.metrics = metrics
    app.state.broadcaster = broadcaster
    return app


def _build(settings: Settings) -> FastAPI:
    if settings.redis.url is None:
        raise InvalidConfiguration(
            "the API reads Redis: set ALPHASPT_REDIS__URL (`alphaspt up` sets it)"
        )
    client = make_redis_client(settings.redis.url.get_secret_value())
    return create_app(settings.api, client)


def run(settings: Settings) -> None:
    """Serve the API and dashboard with uvicorn until interrupted (``alphaspt api``)."""
    app = _build(settings)
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level.lower(),
        ws="websockets-sansio",
        proxy_headers=False,
        server_header=False,
        log_config=api_logs.log_config(),  # no query string (a token) in any line
    )


def main(settings: Settings) -> None:
    """Same as :func:`run`."""
    run(settings)
