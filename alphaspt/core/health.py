"""A worker's probe and metrics endpoint, on a small background HTTP server.

- ``GET /healthz``: 200 while the worker's loop has turned within ``stale_after`` seconds
  (a wedged loop fails the liveness probe and the pod restarts);
- ``GET /readyz``: 200 once the worker has started consuming/producing and is alive;
- ``GET /status``: the snapshot as JSON (``ready``, ``reason``, ``lag``, ``alive``);
- ``GET /metrics``: Prometheus text format (the default registry).

:func:`start_heartbeat` also writes the snapshot to the Redis read model every 2 s
(``workers:<worker>``), so the API and dashboard can tell a crash-looping worker (no
heartbeat, or a start count that keeps rising) from a running one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from alphaspt.core.config import MetricsConfig
from alphaspt.core.views import WorkerView

log = logging.getLogger(__name__)

MESSAGES = Counter(
    "alphaspt_stage_messages_total", "Input messages handled by a stage",
    ["stage", "outcome"],
)
ABORTS = Counter(
    "alphaspt_stage_transactions_aborted_total", "Transactions aborted and retried", ["stage"],
)
CHECKPOINTS = Counter(
    "alphaspt_stage_checkpoints_total", "Checkpoints (outputs, state and offsets durable)",
    ["stage"],
)
LAG = Gauge(
    "alphaspt_stage_consumer_lag", "Input messages not yet consumed by a stage", ["stage"],
)
STATE_BYTES = Gauge(
    "alphaspt_stage_state_bytes_written", "Bytes a stage wrote to its changelog", ["stage"],
)
BATCH_SECONDS = Histogram(
    "alphaspt_stage_batch_seconds", "Time to process and commit one batch", ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class Health:
    def __init__(self, stale_after: float = 60.0) -> None:
        self.stale_after = stale_after
        self.ready = False
        self.lag = 0
        self.assigned = 0
        """Input partitions the worker's consumer holds now (0: not in its group yet)."""
        self.stall_after = 10.0
        """Input consumed but not checkpointed for this long is reported as a stall."""
        self.unsaved_since: float | None = None
        """When the oldest input not yet checkpointed was consumed (``None``: none)."""
        self._failure: str | None = None
        self._alerts: dict[str, str] = {}
        """Conditions that need a person though the loop runs (one per source)."""
        self._last = time.monotonic()

    def fail(self, reason: str | None) -> None:
        """Report a failure to make progress (``None`` clears it); /readyz follows."""
        self._failure = reason

    def alert(self, source: str, reason: str | None) -> None:
        """Report (``None``: clear) what ``source`` needs someone to do, e.g. log in to
        the broker again. Unlike :meth:`fail`, a checkpoint does not clear it."""
        if reason:
            self._alerts[source] = reason
        else:
            self._alerts.pop(source, None)

    @property
    def reason(self) -> str | None:
        """Why the worker is not making progress (``None``: it is)."""
        if self._failure is not None:
            return self._failure
        if self._alerts:
            return "; ".join(self._alerts.values())
        since = self.unsaved_since
        if since is not None and time.monotonic() - since >= self.stall_after:
            return f"no checkpoint for {time.monotonic() - since:.0f} s with input waiting"
        return None

    @property
    def ok(self) -> bool:
        return self.ready and self.alive and self.reason is None

    def beat(self) -> None:
        self._last = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._last < self.stale_after

    def snapshot(self) -> dict[str, object]:
        """What ``/status`` answers and the heartbeat carries."""
        return {"ready": self.ok, "reason": self.reason, "lag": self.lag, "alive": self.alive,
                "assigned": self.assigned}


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200 if health.alive else 503, b"ok\n" if health.alive else
                           b"loop stalled\n")
            elif self.path == "/readyz":
                ok = health.ok
                why = health.reason or ("loop stalled" if not health.alive else "starting")
                self._send(200 if ok else 503,
                           b"ready\n" if ok else f"not ready: {why}\n".encode())
            elif self.path == "/status":
                body = json.dumps(health.snapshot()).encode()
                self._send(200, body, "application/json")
            elif self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the prober gave up waiting; nothing to tell it

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would drown the worker's log

    return Handler


def serve_health(config: MetricsConfig, health: Health) -> ThreadingHTTPServer | None:
    """Start the endpoint in a daemon thread; ``None`` when ``config.port`` is 0."""
    if config.port == 0:
        return None
    server = ThreadingHTTPServer((config.host, config.port), _handler(health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


HEARTBEAT_INTERVAL = 2.0


def start_heartbeat(health: Health, worker: str, write: Callable[[WorkerView, bool], None],
                    *, interval: float = HEARTBEAT_INTERVAL) -> threading.Thread:
    """Write ``health`` as ``worker``'s heartbeat every ``interval`` s in a daemon thread.

    ``write(view, first)`` is the read model's writer (``first`` on the process's first
    successful write). A failed write is logged once per outage and retried; it never
    affects the worker.
    """
    stage, _, strategy = worker.partition("/")
    started = time.time()

    def loop() -> None:
        first, failing = True, False
        while True:
            snap = health.snapshot()
            view = WorkerView(
                worker=worker, stage=stage, strategy=strategy, ready=bool(snap["ready"]),
                alive=bool(snap["alive"]), reason=health.reason, lag=health.lag,
                started_at=started, updated_at=time.time())
            try:
                write(view, first)
                first, failing = False, False
            except Exception as exc:
                if not failing:
                    log.warning("heartbeat to the read model failed (%s); retrying", exc)
                failing = True
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
    thread.start()
    return thread
