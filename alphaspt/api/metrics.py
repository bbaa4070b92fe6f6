"""Prometheus metrics of the API, in a registry owned by one app (no global state)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "alphaspt_api_requests", "HTTP requests by route template and status.",
            ["method", "route", "status"], registry=r,
        )
        self.latency = Histogram(
            "alphaspt_api_request_seconds", "HTTP request latency by route template.",
            ["method", "route"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.redis_errors = Counter(
            "alphaspt_api_redis_errors", "Requests answered 503 because Redis was unreachable.",
            registry=r,
        )
        self.invalid_records = Counter(
            "alphaspt_api_invalid_records", "Records in Redis that did not match the schema.",
            ["kind"], registry=r,
        )
        self.stream_clients = Gauge(
            "alphaspt_api_stream_clients", "Connected WebSocket stream clients.", registry=r,
        )
        self.stream_messages = Counter(
            "alphaspt_api_stream_messages", "Messages received from the Redis updates channel.",
            registry=r,
        )
        self.stream_dropped_clients = Counter(
            "alphaspt_api_stream_dropped_clients",
            "Stream clients disconnected because they fell too far behind.", registry=r,
        )
        self.stream_subscribed = Gauge(
            "alphaspt_api_stream_subscribed",
            "1 while the API is subscribed to the Redis updates channel.", registry=r,
        )


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times HTTP requests by route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
