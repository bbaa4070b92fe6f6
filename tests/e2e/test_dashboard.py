"""The dashboard in headless Chromium: the numbers shown are the read model's, and they move
when a new fill arrives over the WebSocket."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from pydantic import SecretStr

from alphaspt.api import create_app, make_redis_client
from alphaspt.api.server import BackgroundServer
from alphaspt.core.cache import PortfolioCacheWriter, PositionView, StrategyView
from alphaspt.core.config import ApiConfig
from alphaspt.local import servers
from alphaspt.local.servers import EmbeddedRedis

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration

TIMEOUT_MS = 10_000


def alpha_view(realised: float, unrealised: float, charges: float, fills: int,
               infy: int = 0) -> StrategyView:
    positions = [
        PositionView(symbol="RELIANCE", quantity=10, avg_price=2450.0, last_price=2419.0,
                     realised_pnl=1000.0, unrealised_pnl=-310.0),
        PositionView(symbol="TCS", quantity=-5, avg_price=3800.0, last_price=3800.05,
                     realised_pnl=250.5, unrealised_pnl=-0.25),
    ]
    if infy:
        positions.append(PositionView(symbol="INFY", quantity=infy, avg_price=1520.25,
                                      last_price=1520.25, realised_pnl=0.0,
                                      unrealised_pnl=0.0))
    return StrategyView(
        name="alpha", mode="Paper", state="Running", positions=tuple(positions),
        realised_pnl=realised, unrealised_pnl=unrealised, charges=charges,
        net_pnl=round(realised + unrealised - charges, 2), gross_exposure=43190.25,
        orders=fills + 1, fills=fills, rejections=1, updated_at=time.time(),
    )


BETA = StrategyView(name="beta", mode="Live", state="Paused", realised_pnl=-99.99,
                    charges=3.5, net_pnl=-103.49, orders=1, fills=1, updated_at=time.time())


def seed(r: redis.Redis) -> PortfolioCacheWriter:
    now = time.time()
    for i, pnl in enumerate([0.0, 5000.0, 42000.0, 98000.5, 110500.0]):
        r.rpush("pnl:alpha", json.dumps({"t": now - 300 + 60 * i, "pnl": pnl}))
    for i, pnl in enumerate([0.0, -20.0, -80.0]):
        r.rpush("pnl:beta", json.dumps({"t": now - 200 + 60 * i, "pnl": pnl}))
    writer = PortfolioCacheWriter(r)
    writer.record("order", "alpha", {"client_order_id": "co-1", "symbol": "RELIANCE",
                                     "side": "BUY", "quantity": 10, "price": 2450.0,
                                     "status": "FILLED", "ts": time.time_ns()})
    writer.record("rejection", "beta", {"signal_id": "s-1", "symbol": "SBIN", "side": "BUY",
                                        "quantity": 900, "reason": "MAX_ORDER_VALUE",
                                        "message": "order value 7,20,000 > 5,00,000"})
    writer.write_snapshot([alpha_view(125000.5, -310.25, 42.1, fills=6), BETA])
    return writer


def cell(page: Page, table: str, strategy: str, field: str) -> str:
    return page.locator(
        f'#{table} tr[data-strategy="{strategy}"] td[data-field="{field}"]'
    ).first.inner_text()


def chart(page: Page, name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = page.evaluate(
        "(n) => window.alphasptDashboard.chartData(n)", name)
    return data


def test_dashboard_shows_the_read_model_and_updates_live(
    page: Page, dashboard: BackgroundServer, token: str, redis_sync: redis.Redis,
    artifacts_dir: Path,
) -> None:
    writer = seed(redis_sync)
    page.goto(f"{dashboard.url}/#token={token}")
    page.wait_for_selector('#conn[data-state="live"]', timeout=TIMEOUT_MS)
    page.wait_for_selector('#strategies tr[data-strategy="beta"]', timeout=TIMEOUT_MS)
    assert page.evaluate("location.hash") == ""  # the token left the address bar

    # Strategies table.
    assert cell(page, "strategies", "alpha", "mode") == "Paper"
    assert cell(page, "strategies", "alpha", "state") == "Running"
    assert cell(page, "strategies", "alpha", "positions") == "RELIANCE +10 · TCS -5"
    assert cell(page, "strategies", "alpha", "realised_pnl") == "1,25,000.50"
    assert cell(page, "strategies", "alpha", "unrealised_pnl") == "-310.25"
    assert cell(page, "strategies", "alpha", "charges") == "42.10"
    assert cell(page, "strategies", "alpha", "net_pnl") == "1,24,648.15"
    assert cell(page, "strategies", "beta", "mode") == "Live"
    assert cell(page, "strategies", "beta", "state") == "Paused"
    assert cell(page, "strategies", "beta", "positions") == "flat"
    assert cell(page, "strategies", "beta", "net_pnl") == "-103.49"
    assert page.locator('[data-total="net_pnl"]').inner_text() == "1,24,544.66"
    # Positions, orders, rejections.
    assert cell(page, "positions", "alpha", "quantity") == "10"
    assert page.locator('#positions tr[data-symbol="TCS"] td[data-field="quantity"]'
                        ).inner_text() == "-5"
    assert page.locator("#orders tbody tr").count() == 1
    assert page.locator('#rejections td[data-field="reason"]').first.inner_text() == (
        "MAX_ORDER_VALUE")
    # Charts: the stored history plus the snapshot's point, ending at the net P&L.
    assert page.locator("#chart-missing").is_hidden()
    alpha = chart(page, "alpha")
    assert [p["value"] for p in alpha] == [0.0, 5000.0, 42000.0, 98000.5, 110500.0, 124648.15]
    times = [p["time"] for p in alpha]
    assert times == sorted(times)
    assert [p["value"] for p in chart(page, "beta")][-1] == -103.49
    head = page.locator('.chart-card[data-strategy="alpha"] .value').inner_text()
    assert head == "1,24,648.15"

    # A new fill arrives: the portfolio manager records it and writes a new snapshot.
    writer.record("fill", "alpha", {"trade_id": "t-9", "symbol": "INFY", "side": "BUY",
                                    "quantity": 7, "price": 1520.25, "ts": time.time_ns()})
    writer.write_snapshot([alpha_view(125000.5, 1089.75, 47.35, fills=7, infy=7), BETA])
    page.wait_for_function(
        """() => document.querySelector(
            '#strategies tr[data-strategy="alpha"] td[data-field="net_pnl"]'
        ).textContent === "1,26,042.90" """,
        timeout=TIMEOUT_MS,
    )
    assert cell(page, "strategies", "alpha", "fills") == "7"
    assert cell(page, "strategies", "alpha", "positions") == "INFY +7 · RELIANCE +10 · TCS -5"
    assert page.locator('[data-total="net_pnl"]').inner_text() == "1,25,939.41"
    assert chart(page, "alpha")[-1]["value"] == 126042.9
    assert page.locator('.chart-card[data-strategy="alpha"] .value').inner_text() == (
        "1,26,042.90")
    first_order = page.locator("#orders tbody tr").first
    assert first_order.locator('td[data-field="type"]').inner_text() == "fill"
    assert first_order.locator('td[data-field="symbol"]').inner_text() == "INFY"
    assert first_order.locator('td[data-field="price"]').inner_text() == "1,520.25"
    assert page.locator("#orders tbody tr").count() == 2

    # A risk rejection arrives.
    writer.record("rejection", "alpha", {"symbol": "TCS", "reason": "MAX_POSITION",
                                         "message": "position would exceed 50"})
    page.wait_for_function(
        "() => document.querySelectorAll('#rejections tbody tr').length === 2",
        timeout=TIMEOUT_MS,
    )
    assert page.locator('#rejections td[data-field="reason"]').first.inner_text() == (
        "MAX_POSITION")

    page.wait_for_timeout(300)  # let the chart finish its animation frame
    page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]


def test_dashboard_asks_for_the_token_and_refuses_a_wrong_one(
    page: Page, dashboard: BackgroundServer, token: str, redis_sync: redis.Redis,
    artifacts_dir: Path,
) -> None:
    seed(redis_sync)
    page.goto(dashboard.url + "/")
    page.wait_for_selector("#login[open]", timeout=TIMEOUT_MS)
    page.fill("#token-input", "not-the-token")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])", timeout=TIMEOUT_MS)
    assert "refused" in page.inner_text("#login-error")
    page.screenshot(path=str(artifacts_dir / "dashboard-login.png"))
    page.fill("#token-input", token)
    page.click("#login button[type=submit]")
    page.wait_for_selector('#strategies tr[data-strategy="alpha"]', timeout=TIMEOUT_MS)
    page.wait_for_selector('#conn[data-state="live"]', timeout=TIMEOUT_MS)
    assert page.locator("#login[open]").count() == 0
    # A wrong token from the URL fragment is dropped and the form comes back.
    page.goto(dashboard.url + "/#token=wrong")
    page.reload()
    page.wait_for_selector("#login[open]", timeout=TIMEOUT_MS)
    # Only the browser's own reports of the refused requests and WebSocket handshake.
    problems: list[str] = page.problems  # type: ignore[attr-defined]
    assert problems
    assert all("401" in p or "Authentication failed" in p for p in problems), problems


def test_dashboard_without_the_chart_library_says_so(
    page: Page, e2e_redis: EmbeddedRedis, token: str, redis_sync: redis.Redis,
) -> None:
    seed(redis_sync)
    app = create_app(ApiConfig(token=SecretStr(token)), make_redis_client(e2e_redis.url),
                     locate_chart=lambda: None)
    with BackgroundServer(app) as server:
        page.goto(f"{server.url}/#token={token}")
        page.wait_for_selector('#strategies tr[data-strategy="alpha"]', timeout=TIMEOUT_MS)
        assert page.locator("#chart-missing").is_visible()
        assert "pip install litecharts" in page.inner_text("#chart-missing")
        assert cell(page, "strategies", "alpha", "net_pnl") == "1,24,648.15"


def test_dashboard_reports_redis_down_and_recovers(
    page: Page, token: str, tmp_path: Path, artifacts_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = EmbeddedRedis(tmp_path / "a")
    first.start()
    try:
        url, port = first.url, first.port
        seed(redis.Redis.from_url(url, decode_responses=True))
        app = create_app(ApiConfig(token=SecretStr(token)), make_redis_client(url))
        with BackgroundServer(app) as server:
            page.goto(f"{server.url}/#token={token}")
            page.wait_for_selector('#conn[data-state="live"]', timeout=TIMEOUT_MS)
            page.wait_for_selector('#strategies tr[data-strategy="alpha"]', timeout=TIMEOUT_MS)
            first.stop()
            page.wait_for_selector('#conn[data-state="down"]', timeout=TIMEOUT_MS)
            assert "Redis" in page.inner_text("#banner")
            page.screenshot(path=str(artifacts_dir / "dashboard-redis-down.png"))

            monkeypatch.setattr(servers, "free_port", lambda host="127.0.0.1": port)
            second = EmbeddedRedis(tmp_path / "b")
            second.start()
            try:
                writer = PortfolioCacheWriter.from_url(url)
                # The API re-subscribes, the page resyncs; then a new snapshot shows up.
                page.wait_for_function(
                    "() => document.querySelectorAll('#strategies tbody tr').length === 0",
                    timeout=TIMEOUT_MS)
                page.wait_for_selector('#conn[data-state="live"]', timeout=TIMEOUT_MS)
                assert page.locator("#banner").is_hidden()
                assert page.locator(".chart-card").count() == 0  # the new Redis is empty
                writer.write_snapshot([alpha_view(1.0, 2.0, 0.5, fills=1)])
                page.wait_for_function(
                    """() => document.querySelector(
                        '#strategies tr[data-strategy="alpha"] td[data-field="net_pnl"]'
                    )?.textContent === "2.50" """,
                    timeout=TIMEOUT_MS,
                )
                assert page.locator('#conn[data-state="live"]').count() == 1
                assert page.locator("#banner").is_hidden()
            finally:
                second.stop()
    finally:
        first.stop()
