"""Errors answered on purpose: Redis unreachable → 503 with a message (never a 500)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from alphaspt.api.metrics import ApiMetrics

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def install_error_handlers(app: FastAPI, metrics: ApiMetrics) -> None:
    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        metrics.redis_errors.inc()
        log.warning("%s %s: Redis unavailable (%s: %s)", request.method, request.url.path,
                    type(exc).__name__, exc)
        return JSONResponse(
            {"detail": "the read model (Redis) is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    # ConnectionError covers refused/reset connections and BusyLoadingError.
    app.add_exception_handler(RedisConnectionError, redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, redis_unavailable)
