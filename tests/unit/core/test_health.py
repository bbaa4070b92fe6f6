"""The workers' probe endpoint answers what the Helm chart's probes ask."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from alphaspt.core.config import MetricsConfig
from alphaspt.core.health import MESSAGES, Health, serve_health
from alphaspt.local.process import free_port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_probe_endpoint_follows_the_loop() -> None:
    health = Health(stale_after=0.3)
    port = free_port()
    server = serve_health(MetricsConfig(port=port), health)
    assert server is not None
    base = f"http://127.0.0.1:{port}"
    try:
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/readyz")[0] == 503, "not ready before the loop starts"
        health.ready = True
        health.beat()
        assert get(f"{base}/readyz")[0] == 200
        time.sleep(0.4)  # the loop stops turning
        assert get(f"{base}/healthz")[0] == 503
        assert get(f"{base}/readyz")[0] == 503
        health.beat()
        assert get(f"{base}/healthz")[0] == 200
        MESSAGES.labels("unit-test", "processed").inc(3)
        code, body = get(f"{base}/metrics")
        assert code == 200
        assert 'alphaspt_stage_messages_total{outcome="processed",stage="unit-test"} 3.0' in body
        assert get(f"{base}/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_no_endpoint_when_port_is_zero() -> None:
    assert serve_health(MetricsConfig(port=0), Health()) is None
