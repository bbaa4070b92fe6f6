"""Fixtures for the read API: a live uvicorn server on a real Redis, fed by the writer.

The API tests use their own Redis database number of the shared session server, so that
flushing it between tests never touches another suite's keys.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from pydantic import SecretStr

from alphaspt.api import create_app, make_redis_client
from alphaspt.api.server import BackgroundServer
from alphaspt.core.cache import PortfolioCacheWriter, PositionView, StrategyView
from alphaspt.core.config import ApiConfig

API_DB = 11


def db_url(url: str, db: int = API_DB) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


@pytest.fixture(scope="session")
def api_token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def api_redis_url(redis_url: str) -> str:
    return db_url(redis_url)


@pytest.fixture(scope="session")
def api_server(api_redis_url: str, api_token: str) -> Iterator[BackgroundServer]:
    app = create_app(ApiConfig(token=SecretStr(api_token)), make_redis_client(api_redis_url))
    with BackgroundServer(app) as server:
        yield server


@pytest.fixture
def redis_sync(api_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(api_redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def writer(redis_sync: redis.Redis) -> PortfolioCacheWriter:
    return PortfolioCacheWriter(redis_sync)


@pytest.fixture
def client(api_server: BackgroundServer, api_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=10.0,
                      headers={"Authorization": f"Bearer {api_token}"}) as c:
        yield c


@pytest.fixture
def anon(api_server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=10.0) as c:
        yield c


def make_view(name: str, *, mode: str = "Paper", state: str = "Running",
              positions: tuple[PositionView, ...] = (), realised: float = 0.0,
              unrealised: float = 0.0, charges: float = 0.0, orders: int = 0,
              fills: int = 0, rejections: int = 0, updated_at: float = 0.0) -> StrategyView:
    return StrategyView(
        name=name, mode=mode, state=state, positions=positions,
        realised_pnl=realised, unrealised_pnl=unrealised, charges=charges,
        net_pnl=round(realised + unrealised - charges, 2),
        gross_exposure=round(sum(abs(p.quantity) * p.last_price for p in positions), 2),
        orders=orders, fills=fills, rejections=rejections, updated_at=updated_at,
    )


@pytest.fixture
def view_factory() -> Callable[..., StrategyView]:
    return make_view
