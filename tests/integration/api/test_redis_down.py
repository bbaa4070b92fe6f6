"""Redis goes away: 503 with a message (never a 500), then recovery without a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from websockets.sync.client import ClientConnection, connect

from alphaspt.api import create_app, make_redis_client
from alphaspt.api.server import BackgroundServer
from alphaspt.core.cache import PortfolioCacheWriter, StrategyView
from alphaspt.core.config import ApiConfig
from alphaspt.local import servers
from alphaspt.local.servers import EmbeddedRedis

pytestmark = pytest.mark.integration

DATA_PATHS = [
    "/api/v1/strategies",
    "/api/v1/strategies/alpha",
    "/api/v1/strategies/alpha/pnl",
    "/api/v1/portfolio",
    "/api/v1/orders",
    "/api/v1/orders?strategy=alpha",
    "/api/v1/rejections",
    "/api/v1/rejections?strategy=alpha",
]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis-a")
    server.start()
    yield server
    server.stop()


def next_of(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind!r} message within {timeout}s"
        msg: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        if msg["type"] == kind:
            return msg


def test_redis_down_is_503_and_recovers_without_restart(
    own_redis: EmbeddedRedis, tmp_path: Path, api_token: str,
    view_factory: Callable[..., StrategyView], monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, port = own_redis.url, own_redis.port
    app = create_app(ApiConfig(token=SecretStr(api_token)), make_redis_client(url))
    headers = {"Authorization": f"Bearer {api_token}"}
    writer = PortfolioCacheWriter.from_url(url)
    writer.write_snapshot([view_factory("alpha", realised=10.0)])
    writer.record("order", "alpha", {"client_order_id": "co-1"})
    writer.record("rejection", "alpha", {"reason": "MAX_POSITION"})

    with BackgroundServer(app) as server, \
            httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as http, \
            connect(f"ws://{server.host}:{server.port}/api/v1/stream", open_timeout=5,
                    additional_headers=headers) as ws:
        next_of(ws, "hello")
        next_of(ws, "resync")  # the broadcaster subscribed
        for path in DATA_PATHS:
            assert http.get(path).status_code == 200, path

        own_redis.stop()

        for path in DATA_PATHS:
            r = http.get(path)
            assert r.status_code == 503, path
            assert r.json() == {"detail": "the read model (Redis) is unavailable; retry shortly"}
            assert r.headers["retry-after"] == "5"
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"] == "Redis is unreachable"
        assert http.get("/healthz").status_code == 200
        assert next_of(ws, "status")["redis"] == "down"
        # Bad parameters are still a 4xx (validated before Redis is touched), and the
        # token is still checked.
        assert http.get("/api/v1/orders?limit=0").status_code == 422
        assert http.get("/api/v1/portfolio", headers={"Authorization": "Bearer x"}
                        ).status_code == 401
        assert f"alphaspt_api_redis_errors_total {len(DATA_PATHS)}.0" in http.get("/metrics").text

        # A new Redis on the same address, empty: the same app serves it.
        monkeypatch.setattr(servers, "free_port", lambda host="127.0.0.1": port)
        second = EmbeddedRedis(tmp_path / "redis-b")
        second.start()
        try:
            assert second.url == url
            writer2 = PortfolioCacheWriter.from_url(url)
            deadline = time.monotonic() + 10
            while http.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "API never saw Redis come back"
                time.sleep(0.05)
            assert http.get("/api/v1/strategies").json() == {"items": []}
            next_of(ws, "resync")  # the stream re-subscribed by itself
            writer2.write_snapshot([view_factory("alpha", realised=42.0)])
            assert next_of(ws, "portfolio")["strategies"][0]["net_pnl"] == 42.0
            assert http.get("/api/v1/strategies/alpha").json()["realised_pnl"] == 42.0
            assert http.get("/api/v1/portfolio").json()["net_pnl"] == 42.0
        finally:
            second.stop()
