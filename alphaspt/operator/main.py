"""``alphaspt operator``: run kopf with the AlphasPT handlers in one namespace.

    run(settings)                 # blocking; what the CLI calls
    await serve(settings, stop_flag=..., ready_flag=...)   # in-process (tests, benchmarks)

Standalone (no kopf peering): run one replica with the ``Recreate`` strategy. The liveness
endpoint is ``http://0.0.0.0:<operator.health_port>/healthz``, the Prometheus metrics are
on ``http://0.0.0.0:<operator.metrics_port>/metrics`` (:mod:`alphaspt.operator.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf

from alphaspt.core.config import Settings
from alphaspt.operator.handlers import make_registry
from alphaspt.operator.metrics import serve_metrics
from alphaspt.operator.services import require_connections


async def serve(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    liveness: bool = True,
) -> None:
    """Run the operator until ``stop_flag`` is set (or SIGINT/SIGTERM in the main thread)."""
    port = settings.operator.health_port
    endpoint = f"http://0.0.0.0:{port}/healthz" if liveness and port else None
    options: dict[str, Any] = {
        "registry": make_registry(settings.operator),
        "memo": kopf.Memo(settings=settings),
        "namespaces": [settings.namespace],
        "clusterwide": False,
        "standalone": True,
        "lifecycle": kopf.lifecycles.all_at_once,
        "liveness_endpoint": endpoint,
        "stop_flag": stop_flag,
        "ready_flag": ready_flag,
    }
    metrics = serve_metrics(settings.operator.metrics_port) if settings.operator.metrics_port \
        else None
    try:
        await kopf.operator(**options)
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()


def run(settings: Settings) -> None:
    """Blocking entry point of ``alphaspt operator``."""
    require_connections(settings)  # one clear line, rather than inside kopf's start-up
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))
