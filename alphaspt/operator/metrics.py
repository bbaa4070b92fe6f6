"""The operator's Prometheus metrics, on a registry of its own (``/metrics`` on
``operator.metrics_port``):

- ``alphaspt_operator_reconciles_total{kind, handler}``: handler runs;
- ``alphaspt_operator_reconcile_errors_total{kind, handler, error}``: runs that raised
  (``error`` = ``temporary`` (retried), ``permanent`` (fix the spec) or ``unexpected``);
- ``alphaspt_operator_reconcile_duration_seconds{kind, handler}``: how long runs took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from alphaspt.exceptions import PermanentFailure, TemporaryFailure

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILES = Counter("alphaspt_operator_reconciles", "Handler runs of the operator",
                     ["kind", "handler"], registry=REGISTRY)
ERRORS = Counter("alphaspt_operator_reconcile_errors", "Handler runs that raised",
                 ["kind", "handler", "error"], registry=REGISTRY)
DURATION = Histogram("alphaspt_operator_reconcile_duration_seconds",
                     "Duration of the operator's handler runs", ["kind", "handler"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                     registry=REGISTRY)


def error_class(exc: BaseException) -> str:
    """Ours, or kopf's that :func:`~alphaspt.operator.handlers.kopf_errors` made of ours."""
    if isinstance(exc, TemporaryFailure | kopf.TemporaryError):
        return "temporary"
    if isinstance(exc, PermanentFailure | kopf.PermanentError):
        return "permanent"
    return "unexpected"


@contextmanager
def measured(kind: str, handler: str) -> Iterator[None]:
    started = time.perf_counter()
    RECONCILES.labels(kind, handler).inc()
    try:
        yield
    except Exception as exc:
        ERRORS.labels(kind, handler, error_class(exc)).inc()
        raise
    finally:
        DURATION.labels(kind, handler).observe(time.perf_counter() - started)


def serve_metrics(port: int, host: str = "0.0.0.0") -> Any:
    """Start the ``/metrics`` HTTP server in a daemon thread; returns the server (call
    ``shutdown()`` to stop it)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server
