"""The read API against a real Redis fed by PortfolioCacheWriter, over a live uvicorn."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import redis
from fastapi import FastAPI
from pydantic import SecretStr

from alphaspt.api import create_app, make_redis_client
from alphaspt.core.cache import PortfolioCacheWriter, PositionView, StrategyView
from alphaspt.core.config import ApiConfig
from alphaspt.exceptions import InvalidConfiguration

pytestmark = pytest.mark.integration

PROTECTED = [
    "/api/v1/strategies",
    "/api/v1/strategies/alpha",
    "/api/v1/strategies/alpha/pnl",
    "/api/v1/portfolio",
    "/api/v1/orders",
    "/api/v1/rejections",
    "/metrics",
    "/openapi.json",
]

ViewFactory = Callable[..., StrategyView]


def seed(writer: PortfolioCacheWriter, make_view: ViewFactory) -> None:
    alpha = make_view(
        "alpha", mode="Paper", state="Running", realised=1250.5, unrealised=-310.25,
        charges=42.1, orders=7, fills=6, rejections=2, updated_at=1_700_000_000.5,
        positions=(
            PositionView(symbol="RELIANCE", quantity=10, avg_price=2450.0, last_price=2419.0,
                         realised_pnl=1000.0, unrealised_pnl=-310.0),
            PositionView(symbol="TCS", quantity=-5, avg_price=3800.0, last_price=3800.05,
                         realised_pnl=250.5, unrealised_pnl=-0.25),
        ),
    )
    beta = make_view("beta", mode="Live", state="Paused", realised=-99.99, charges=3.5,
                     orders=1, fills=1)
    writer.write_snapshot([alpha, beta])


# ---- health, readiness, access control ------------------------------------------------


def test_healthz_and_readyz_need_no_token(anon: httpx.Client) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    r = anon.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


@pytest.mark.parametrize("path", PROTECTED)
def test_missing_token_is_401(anon: httpx.Client, path: str) -> None:
    r = anon.get(path)
    assert r.status_code == 401
    assert r.json()["detail"] == "missing or invalid bearer token"
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "wrong"},
    ],
)
def test_wrong_token_is_401(anon: httpx.Client, headers: dict[str, str]) -> None:
    for path in PROTECTED:
        assert anon.get(path, headers=headers).status_code == 401, path


def test_token_prefix_or_extension_is_refused(anon: httpx.Client, api_token: str) -> None:
    for token in (api_token[:-1], api_token + "x", api_token.upper()):
        r = anon.get("/api/v1/portfolio", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


def test_token_in_query_string_is_refused(anon: httpx.Client, api_token: str) -> None:
    assert anon.get("/api/v1/portfolio", params={"token": api_token}).status_code == 401


def test_right_token_is_accepted_case_insensitive_scheme(
    anon: httpx.Client, api_token: str, redis_sync: redis.Redis
) -> None:
    r = anon.get("/api/v1/portfolio", headers={"Authorization": f"bearer {api_token}"})
    assert r.status_code == 200


def test_no_configured_token_refuses_to_build(api_redis_url: str) -> None:
    for token in (None, SecretStr("")):
        with pytest.raises(InvalidConfiguration, match="ALPHASPT_API__TOKEN"):
            create_app(ApiConfig(token=token), make_redis_client(api_redis_url))


def test_dashboard_page_and_assets_load_without_token(anon: httpx.Client) -> None:
    page = anon.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<table id="strategies"' in page.text
    js = anon.get("/static/dashboard.js")
    assert js.status_code == 200
    assert "alphasptDashboard" in js.text
    assert anon.get("/static/style.css").status_code == 200
    lib = anon.get("/static/vendor/lightweight-charts.js")
    assert lib.status_code == 200
    assert "javascript" in lib.headers["content-type"]
    assert "LightweightCharts" in lib.text
    assert anon.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def in_process(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_missing_chart_library_is_a_clear_404(api_redis_url: str, api_token: str) -> None:
    app = create_app(ApiConfig(token=SecretStr(api_token)), make_redis_client(api_redis_url),
                     locate_chart=lambda: None)
    async with in_process(app) as c:
        r = await c.get("/static/vendor/lightweight-charts.js")
        assert r.status_code == 404
        assert "pip install litecharts" in r.json()["detail"]
        assert (await c.get("/")).status_code == 200


# ---- CORS -------------------------------------------------------------------------------


async def test_no_cors_unless_configured(api_redis_url: str, api_token: str) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    plain = create_app(ApiConfig(token=SecretStr(api_token)), make_redis_client(api_redis_url))
    async with in_process(plain) as c:
        r = await c.options("/api/v1/portfolio", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    allowed = create_app(
        ApiConfig(token=SecretStr(api_token), cors_origins=("https://ops.example",)),
        make_redis_client(api_redis_url),
    )
    async with in_process(allowed) as c:
        ok = await c.options("/api/v1/portfolio", headers={**preflight,
                                                           "Origin": "https://ops.example"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://ops.example"
        bad = await c.options("/api/v1/portfolio", headers=preflight)
        assert bad.headers.get("access-control-allow-origin") != "https://evil.example"


# ---- strategies and portfolio -----------------------------------------------------------


def test_empty_read_model(client: httpx.Client, redis_sync: redis.Redis) -> None:
    assert client.get("/api/v1/strategies").json() == {"items": []}
    totals = client.get("/api/v1/portfolio").json()
    assert totals["strategies"] == 0
    assert totals["net_pnl"] == 0.0
    assert client.get("/api/v1/orders").json() == {"total": 0, "offset": 0, "limit": 50,
                                                   "items": []}


def test_strategies_list_and_detail(client: httpx.Client, writer: PortfolioCacheWriter,
                                    view_factory: ViewFactory) -> None:
    seed(writer, view_factory)
    items = client.get("/api/v1/strategies").json()["items"]
    assert [s["name"] for s in items] == ["alpha", "beta"]
    alpha = client.get("/api/v1/strategies/alpha").json()
    assert alpha == items[0]
    assert alpha["mode"] == "Paper"
    assert alpha["state"] == "Running"
    assert alpha["realised_pnl"] == 1250.5
    assert alpha["unrealised_pnl"] == -310.25
    assert alpha["charges"] == 42.1
    assert alpha["net_pnl"] == round(1250.5 - 310.25 - 42.1, 2)
    assert (alpha["orders"], alpha["fills"], alpha["rejections"]) == (7, 6, 2)
    assert alpha["updated_at"] == 1_700_000_000.5
    assert alpha["positions"] == [
        {"symbol": "RELIANCE", "quantity": 10, "avg_price": 2450.0, "last_price": 2419.0,
         "realised_pnl": 1000.0, "unrealised_pnl": -310.0},
        {"symbol": "TCS", "quantity": -5, "avg_price": 3800.0, "last_price": 3800.05,
         "realised_pnl": 250.5, "unrealised_pnl": -0.25},
    ]
    beta = client.get("/api/v1/strategies/beta").json()
    assert (beta["mode"], beta["state"], beta["positions"]) == ("Live", "Paused", [])


def test_portfolio_totals(client: httpx.Client, writer: PortfolioCacheWriter,
                          view_factory: ViewFactory) -> None:
    seed(writer, view_factory)
    totals = client.get("/api/v1/portfolio").json()
    assert totals["strategies"] == 2
    assert totals["realised_pnl"] == round(1250.5 - 99.99, 2)
    assert totals["charges"] == round(42.1 + 3.5, 2)
    assert totals["net_pnl"] == round((1250.5 - 310.25 - 42.1) + (-99.99 - 3.5), 2)
    assert (totals["orders"], totals["fills"], totals["rejections"]) == (8, 7, 2)


def test_unknown_strategy_is_404(client: httpx.Client, writer: PortfolioCacheWriter,
                                 view_factory: ViewFactory) -> None:
    seed(writer, view_factory)
    for path in ("/api/v1/strategies/gamma", "/api/v1/strategies/gamma/pnl"):
        r = client.get(path)
        assert r.status_code == 404
        assert "gamma" in r.json()["detail"]


@pytest.mark.parametrize("name", ["Alpha", "a_b", "-a", "a" * 254, "%E2%82%B9", "a.b"])
def test_invalid_strategy_name_is_422(client: httpx.Client, name: str) -> None:
    r = client.get(f"/api/v1/strategies/{name}")
    assert r.status_code == 422
    assert r.json()["detail"]


def test_pnl_history(client: httpx.Client, writer: PortfolioCacheWriter,
                     view_factory: ViewFactory) -> None:
    for net in (10.0, 25.5, -4.0):
        writer.write_snapshot([view_factory("alpha", realised=net)])
    body = client.get("/api/v1/strategies/alpha/pnl").json()
    assert body["strategy"] == "alpha"
    assert [p["pnl"] for p in body["points"]] == [10.0, 25.5, -4.0]
    times = [p["t"] for p in body["points"]]
    assert times == sorted(times)
    last = client.get("/api/v1/strategies/alpha/pnl", params={"limit": 1}).json()
    assert [p["pnl"] for p in last["points"]] == [-4.0]
    assert client.get("/api/v1/strategies/alpha/pnl", params={"limit": 0}).status_code == 422


# ---- orders and rejections --------------------------------------------------------------


def _orders(writer: PortfolioCacheWriter) -> None:
    for i in range(30):
        strategy = "alpha" if i % 3 else "beta"
        writer.record("order", strategy, {"client_order_id": f"co-{i}", "symbol": "INFY",
                                          "side": "BUY", "quantity": i + 1,
                                          "price": 1500.0 + i})


def test_orders_newest_first_and_paginated(client: httpx.Client,
                                           writer: PortfolioCacheWriter) -> None:
    _orders(writer)
    page = client.get("/api/v1/orders", params={"limit": 10}).json()
    assert page["total"] == 30
    assert (page["offset"], page["limit"]) == (0, 10)
    assert [o["client_order_id"] for o in page["items"]] == [f"co-{i}" for i in range(29, 19, -1)]
    assert page["items"][0] == {"type": "order", "strategy": "alpha", "client_order_id": "co-29",
                                "symbol": "INFY", "side": "BUY", "quantity": 30,
                                "price": 1529.0}
    page3 = client.get("/api/v1/orders", params={"limit": 10, "offset": 20}).json()
    assert [o["client_order_id"] for o in page3["items"]] == [f"co-{i}" for i in range(9, -1, -1)]
    beyond = client.get("/api/v1/orders", params={"offset": 30}).json()
    assert beyond["items"] == []
    assert beyond["total"] == 30


def test_orders_filtered_by_strategy(client: httpx.Client,
                                     writer: PortfolioCacheWriter) -> None:
    _orders(writer)
    beta = client.get("/api/v1/orders", params={"strategy": "beta", "limit": 4}).json()
    assert beta["total"] == 10
    assert [o["client_order_id"] for o in beta["items"]] == ["co-27", "co-24", "co-21", "co-18"]
    assert {o["strategy"] for o in beta["items"]} == {"beta"}
    nobody = client.get("/api/v1/orders", params={"strategy": "nobody"}).json()
    assert (nobody["total"], nobody["items"]) == (0, [])


@pytest.mark.parametrize("path", ["/api/v1/orders", "/api/v1/rejections"])
@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0}, {"limit": 501}, {"limit": "abc"}, {"offset": -1},
        {"offset": 10**30}, {"offset": "1.5"}, {"strategy": "BAD NAME"},
        {"strategy": "x" * 300},
    ],
)
def test_bad_page_parameters_are_422_with_a_message(
    client: httpx.Client, path: str, params: dict[str, str | int]
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail
    assert all(d["msg"] for d in detail)


def test_rejections_with_reasons_and_strategy_filter(client: httpx.Client,
                                                     writer: PortfolioCacheWriter) -> None:
    for i in range(12):
        strategy = "alpha" if i % 4 else "beta"
        writer.record("rejection", strategy, {"signal_id": f"s-{i}", "symbol": "SBIN",
                                              "reason": "MAX_POSITION",
                                              "message": f"position would be {100 + i}"})
    page = client.get("/api/v1/rejections", params={"limit": 5}).json()
    assert page["total"] == 12
    assert page["items"][0] == {"type": "rejection", "strategy": "alpha", "signal_id": "s-11",
                                "symbol": "SBIN", "reason": "MAX_POSITION",
                                "message": "position would be 111"}
    beta = client.get("/api/v1/rejections", params={"strategy": "beta", "limit": 2}).json()
    assert beta["total"] == 3
    assert [r["signal_id"] for r in beta["items"]] == ["s-8", "s-4"]
    beta2 = client.get("/api/v1/rejections",
                       params={"strategy": "beta", "limit": 2, "offset": 2}).json()
    assert [r["signal_id"] for r in beta2["items"]] == ["s-0"]


def test_malformed_records_are_skipped_and_counted(
    client: httpx.Client, writer: PortfolioCacheWriter, redis_sync: redis.Redis
) -> None:
    writer.record("order", "alpha", {"client_order_id": "good"})
    redis_sync.lpush("orders:recent", json.dumps({"type": 5, "strategy": ["x"]}))
    page = client.get("/api/v1/orders").json()
    assert [o["client_order_id"] for o in page["items"]] == ["good"]
    metrics = client.get("/metrics").text
    assert 'alphaspt_api_invalid_records_total{kind="order"}' in metrics


# ---- metrics and OpenAPI ----------------------------------------------------------------


def test_metrics_count_requests_by_route(client: httpx.Client, redis_sync: redis.Redis) -> None:
    client.get("/api/v1/portfolio")
    client.get("/api/v1/strategies/nobody")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert ('alphaspt_api_requests_total{method="GET",route="/api/v1/portfolio",status="200"}'
            in text)
    assert ('alphaspt_api_requests_total{method="GET",route="/api/v1/strategies/{name}",'
            'status="404"}' in text)
    assert "alphaspt_api_request_seconds_bucket" in text
    assert "alphaspt_api_stream_clients" in text


def test_openapi_is_published_behind_the_token(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/strategies", "/api/v1/strategies/{name}", "/api/v1/portfolio",
                 "/api/v1/orders", "/api/v1/rejections", "/healthz", "/readyz", "/metrics"):
        assert path in paths, path
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert paths["/api/v1/orders"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/healthz"]["get"]
    assert "503" in paths["/api/v1/portfolio"]["get"]["responses"]
