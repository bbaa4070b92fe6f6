"""The dashboard: ``/`` and its static files, served without a token (they hold no data).

The chart library is TradingView's Lightweight Charts, never copied into this repository:
its standalone build comes from an installed package (see :func:`locate_chart_library`)
and is served locally at ``/static/vendor/lightweight-charts.js`` (no CDN).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
CHART_LIBRARY_URL: Final = "/static/vendor/lightweight-charts.js"

# The PyPI package `litecharts` ships Lightweight Charts' standalone production build
# (an IIFE defining window.LightweightCharts, v5.x) and has no runtime dependencies.
_CHART_PACKAGES: Final = (("litecharts", ("js", "lightweight-charts.js")),)

_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def locate_chart_library() -> Path | None:
    """The installed Lightweight Charts standalone JS, without importing its package."""
    for package, parts in _CHART_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        candidate = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
        if candidate.is_file():
            return candidate
    return None


def dashboard_router(chart_library: Path | None) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index() -> Response:
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html; charset=utf-8",
            headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )

    @router.get(CHART_LIBRARY_URL)
    async def chart_js() -> Response:
        if chart_library is None:
            return JSONResponse(
                {"detail": "chart library not installed: pip install litecharts"},
                status_code=404,
            )
        return FileResponse(
            chart_library,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=86400",
                     "X-Content-Type-Options": "nosniff"},
        )

    return router
