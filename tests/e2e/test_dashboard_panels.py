"""The dashboard's strategy panels in headless Chromium, with live data from the read model:
limit use, drawdown, daily P&L, FIFO round trips and win rate, a price chart with the fills
as markers, worker health (a crash-looping worker is not shown as running), IST time axes,
no page widening, a phone-width layout, and the chart history of a page opened before any
strategy reported."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from alphaspt.api.server import BackgroundServer
from alphaspt.core.cache import PortfolioCacheWriter, PositionView, StrategyView
from alphaspt.core.views import PricePoint, WorkerView

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

TIMEOUT_MS = 15_000
DAY = 86_400


def view(net: float, *, exposure: float = 60_000.0, kill: bool = False) -> StrategyView:
    return StrategyView(
        name="gamma", mode="Paper", state="Running", risk_profile="conservative",
        positions=(PositionView(symbol="SBIN", quantity=0, avg_price=0.0, last_price=812.0,
                                realised_pnl=net, unrealised_pnl=0.0),),
        realised_pnl=net, net_pnl=net, gross_exposure=exposure, orders=4, fills=4,
        max_daily_loss=2_000.0, max_gross_exposure=100_000.0, kill_switch=kill,
        updated_at=time.time())


def seed(r: redis.Redis, now: float) -> PortfolioCacheWriter:
    writer = PortfolioCacheWriter(r)
    # Yesterday ended at +500; today it fell to -1,000: daily P&L -1,500 (75 % of 2,000).
    for t, pnl in [(now - DAY - 600, 0.0), (now - DAY - 300, 900.0), (now - DAY, 500.0),
                   (now - 120, -200.0), (now - 60, -1000.0)]:
        r.rpush("pnl:gamma", json.dumps({"t": t, "pnl": pnl}))
    start = int(now) - 300
    writer.prices([("SBIN", PricePoint(float(start + i), 800.0 + i * 0.1)) for i in range(240)])
    # Two round trips: +10 x (805 - 800) = +50 (a win), 5 x (806 - 810) short... = -20 (a loss).
    for i, (side, qty, price, at) in enumerate([("BUY", 10, 800.0, 10), ("SELL", 10, 805.0, 60),
                                                ("SELL", 5, 806.0, 120), ("BUY", 5, 810.0, 200)]):
        ts = (start + at) * 1_000_000_000
        writer.record("fill", "gamma", {"trade_id": f"t{i}", "symbol": "SBIN", "side": side,
                                        "quantity": qty, "price": price, "ts": ts,
                                        "exchange_ts": ts})
    writer.record("rejection", "gamma", {
        "symbol": "SBIN", "side": "BUY", "quantity": 1, "reason": "MAX_DAILY_LOSS",
        "message": "daily P&L " + "-1,000.00 is at or below -maxDailyLoss; " * 30})
    ok = WorkerView(worker="risk-manager", stage="risk-manager", ready=True, alive=True,
                    started_at=now - 600, updated_at=now)
    writer.heartbeat(ok, first=True)
    dead = WorkerView(worker="strategy-runner/gamma", stage="strategy-runner", strategy="gamma",
                      reason=None, started_at=now - 90, updated_at=now - 45)
    for _ in range(4):  # it started four times: a crash loop, and its last beat is old
        writer.heartbeat(dead, first=True)
    writer.write_snapshot([view(-1000.0)])
    return writer


def no_widening(page: Page) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    inner = page.evaluate("() => window.innerWidth")
    assert width <= inner, f"the page is {width} px wide in a {inner} px window"


def test_strategy_panels_show_live_data(
    page: Page, dashboard: BackgroundServer, token: str, redis_sync: redis.Redis,
    artifacts_dir: Path, browser: Browser,
) -> None:
    now = time.time()
    writer = seed(redis_sync, now)
    page.goto(f"{dashboard.url}/#token={token}")
    page.wait_for_selector('#trips tbody tr', timeout=TIMEOUT_MS)
    page.wait_for_selector('#workers tr[data-worker="risk-manager"]', timeout=TIMEOUT_MS)

    # Limit use: daily loss 1,500 of 2,000; exposure 60,000 of 1,00,000.
    loss = page.inner_text('[data-limit="loss"]')
    assert loss.startswith("1,500.00 of 2,000.00"), loss
    assert page.locator('[data-meter="loss"]').get_attribute("class") == "meter warn"
    assert page.inner_text('[data-limit="exposure"]').startswith("60,000.00 of 1,00,000.00")
    # Drawdown: peak 900, trough -1,000.
    assert page.inner_text('[data-stat="drawdown"]') == "1,900.00 / 1,900.00"
    # Daily P&L, newest day first.
    days = page.locator("#daily tbody tr")
    assert days.count() == 2
    assert days.first.locator('td[data-field="change"]').inner_text() == "-1,500.00"
    # Round trips (FIFO), newest first, and the win rate.
    trips = page.locator("#trips tbody tr")
    assert trips.count() == 2
    assert trips.first.locator('td[data-field="side"]').inner_text() == "SHORT"
    assert trips.first.locator('td[data-field="pnl"]').inner_text() == "-20.00"
    assert trips.nth(1).locator('td[data-field="pnl"]').inner_text() == "50.00"
    assert page.inner_text('[data-stat="win_rate"]') == "50% of 2"
    assert "IST" in trips.first.locator('td[data-field="exit_ts"]').inner_text()
    # Price chart with one marker per fill.
    page.wait_for_function("() => (window.alphasptDashboard.priceData() || []).length === 240",
                           timeout=TIMEOUT_MS)
    markers = page.evaluate("() => window.alphasptDashboard.priceMarkers()")
    assert [m["shape"] for m in markers] == ["arrowUp", "arrowDown", "arrowDown", "arrowUp"]
    # Workers: the crash-looping runner is not shown as running.
    runner = '#workers tr[data-worker="strategy-runner/gamma"]'
    assert page.inner_text(f'{runner} td[data-field="status"]') == "down"
    assert "no heartbeat" in page.inner_text(
        '#workers tr[data-worker="strategy-runner/gamma"] td[data-field="why"]')
    assert page.inner_text('#workers tr[data-worker="strategy-runner/gamma"] '
                           'td[data-field="starts"]') == "4"
    assert page.inner_text('#workers tr[data-worker="risk-manager"] td[data-field="status"]'
                           ) == "ok"
    # A very long rejection message wraps instead of widening the page or its table.
    no_widening(page)
    message = page.locator('#rejections td[data-field="message"]').first
    assert message.bounding_box()["height"] > 60  # type: ignore[index]  # several lines
    assert page.evaluate("() => { const s = document.querySelector('#rejections').parentElement;"
                         " return s.scrollWidth <= s.clientWidth; }")
    assert page.locator("#detail-halted").is_hidden()
    page.wait_for_timeout(400)
    page.screenshot(path=str(artifacts_dir / "dashboard-panels.png"), full_page=True)

    # The kill switch engages: the strategy shows Halted.
    writer.write_snapshot([view(-1000.0, kill=True)])
    page.wait_for_selector("#detail-halted:not([hidden])", timeout=TIMEOUT_MS)
    assert page.inner_text('#strategies tr[data-strategy="gamma"] td[data-field="state"]'
                           ) == "Halted"

    # Phone width: nothing wider than the screen.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-IN",
                                timezone_id="Asia/Kolkata")
    try:
        small = phone.new_page()
        small.goto(f"{dashboard.url}/#token={token}")
        small.wait_for_selector('#trips tbody tr', timeout=TIMEOUT_MS)
        no_widening(small)
        small.wait_for_timeout(400)
        small.screenshot(path=str(artifacts_dir / "dashboard-phone.png"), full_page=True)
    finally:
        phone.close()
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_page_opened_before_any_strategy_gets_the_whole_history(
    page: Page, dashboard: BackgroundServer, token: str, redis_sync: redis.Redis,
) -> None:
    page.goto(f"{dashboard.url}/#token={token}")
    page.wait_for_selector('#conn[data-state="live"]', timeout=TIMEOUT_MS)
    assert page.locator(".chart-card").count() == 0
    now = time.time()
    for i in range(30):  # what the portfolio manager stored before this snapshot
        redis_sync.rpush("pnl:gamma", json.dumps({"t": now - 300 + 10 * i, "pnl": float(i)}))
    PortfolioCacheWriter(redis_sync).write_snapshot([view(29.0)])
    page.wait_for_function(
        "() => (window.alphasptDashboard.chartData('gamma') || []).length >= 30",
        timeout=TIMEOUT_MS)
    values = [p["value"] for p in page.evaluate(
        "() => window.alphasptDashboard.chartData('gamma')")]
    assert values[:30] == [float(i) for i in range(30)]
    assert page.problems == []  # type: ignore[attr-defined]
