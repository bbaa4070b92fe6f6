"""Browser tests of the dashboard: a real Redis, the API on uvicorn, headless Chromium.

Chromium is Debian's (``apt-get install -y chromium``), driven by Playwright for Python
with ``executable_path``; Playwright's own browser download is never used. Without
Chromium or Playwright the tests are skipped locally and fail under CI (``CI=true``).
Screenshots go to ``$ALPHASPT_ARTIFACTS`` (default ``artifacts/`` at the repository root,
which git ignores).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from pydantic import SecretStr

from alphaspt.api import create_app, make_redis_client
from alphaspt.api.server import BackgroundServer
from alphaspt.core.config import ApiConfig
from alphaspt.local.servers import EmbeddedRedis

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = os.environ.get("ALPHASPT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]


def _require_browser() -> None:
    missing = []
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("ALPHASPT_ARTIFACTS", REPO / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def e2e_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("e2e-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_sync(e2e_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(e2e_redis.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def dashboard(e2e_redis: EmbeddedRedis, token: str) -> Iterator[BackgroundServer]:
    app = create_app(ApiConfig(token=SecretStr(token)), make_redis_client(e2e_redis.url))
    with BackgroundServer(app) as server:
        yield server


# Module scope, not session: while Playwright's sync API is alive its event loop runs in
# this thread, and every later asyncio.run() in the session would fail.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    b = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
    )
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1100},
                                  locale="en-IN", timezone_id="Asia/Kolkata")
    p = context.new_page()
    problems: list[str] = []
    p.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            problems.append(f"console error: {msg.text}")

    p.on("console", on_console)
    p.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
         if r.status >= 400 else None)
    p.problems = problems  # type: ignore[attr-defined]
    yield p
    context.close()
