"""Latency and throughput of ``GET /api/v1/portfolio`` against ``GET /healthz``.

Baseline, measured in the same run on the same server: ``/healthz`` (no token check, no
Redis). The candidate ``/api/v1/portfolio`` checks the bearer token and reads one Redis
hash. The server is the real entry point, :func:`alphaspt.api.app.run`, in a subprocess on
a free loopback port, against an embedded Redis seeded with ``--strategies`` strategies.
The client is httpx (asyncio) with ``--concurrency`` connections; the two endpoints are
measured in alternating rounds so drift hits both. Bounded: ``--requests`` per endpoint.

Then ``--ws-clients`` WebSocket clients of ``/api/v1/stream`` receive ``--ws-updates``
updates published to Redis as the portfolio manager publishes them; delivery lag is
arrival minus publication, per client and update.

    python bench/bench_api.py [--requests 4000] [--concurrency 8] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from alphaspt.core.cache import PortfolioCacheWriter, PositionView, StrategyView
from alphaspt.local.process import free_port
from alphaspt.local.servers import EmbeddedRedis

SERVER = (
    "from alphaspt.api.app import run\n"
    "from alphaspt.core.config import load_settings\n"
    "run(load_settings())\n"
)


def seed(url: str, strategies: int) -> None:
    views = [
        StrategyView(
            name=f"s{i}", positions=tuple(
                PositionView(symbol=f"SYM{j}", quantity=10 * j - 15, avg_price=100.0 + j,
                             last_price=101.0 + j, realised_pnl=5.0 * j,
                             unrealised_pnl=float(10 * j - 15))
                for j in range(4)),
            realised_pnl=30.0, unrealised_pnl=4.0, charges=1.5, net_pnl=32.5,
            gross_exposure=4000.0, orders=12, fills=10, updated_at=time.time(),
        )
        for i in range(strategies)
    ]
    PortfolioCacheWriter.from_url(url).write_snapshot(views)


async def measure(base: str, path: str, headers: dict[str, str], n: int,
                  concurrency: int) -> tuple[list[float], float]:
    """Latencies (seconds) of ``n`` GETs over ``concurrency`` connections, and wall time."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=10.0) as client:
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                r = await client.get(path)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return latencies, wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("API server did not become ready")


async def stream_lag(base: str, token: str, redis_url: str, clients: int,
                     updates: int) -> list[float]:
    """Seconds from each update's publication in Redis to its arrival at each of
    ``clients`` WebSocket clients of ``/api/v1/stream`` (published as the portfolio
    manager publishes an order record)."""
    import websockets

    url = base.replace("http://", "ws://") + "/api/v1/stream"
    writer = PortfolioCacheWriter.from_url(redis_url)
    lags: list[float] = []
    sockets = [await websockets.connect(url, additional_headers={
        "Authorization": f"Bearer {token}"}) for _ in range(clients)]
    try:
        for ws in sockets:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello", hello

        async def receive(ws: Any) -> None:
            got = 0
            while got < updates:
                body = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if body.get("type") == "order" and "bench_sent_ns" in body:
                    lags.append((time.time_ns() - body["bench_sent_ns"]) / 1e9)
                    got += 1

        async def publish() -> None:
            for i in range(updates):
                await asyncio.to_thread(writer.record, "order", "s0",
                                        {"bench_sent_ns": time.time_ns(), "n": i})
                await asyncio.sleep(0.02)

        await asyncio.gather(publish(), *(receive(ws) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()
    return lags


def run(redis_url: str, requests: int, concurrency: int, rounds: int, strategies: int,
        ws_clients: int, ws_updates: int) -> dict[str, Any]:
    """The API server against ``redis_url``: per endpoint (p50 s, p99 s, req/s), the
    endpoints in alternating rounds; then the WebSocket delivery lags (seconds)."""
    token = secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {token}"}
    proc: subprocess.Popen[bytes] | None = None
    try:
        seed(redis_url, strategies)
        port = free_port()
        env = {
            **os.environ,
            "ALPHASPT_SETTINGS_FILE": "/nonexistent/settings.toml",
            "ALPHASPT_API__HOST": "127.0.0.1",
            "ALPHASPT_API__PORT": str(port),
            "ALPHASPT_API__TOKEN": token,
            "ALPHASPT_REDIS__URL": redis_url,
            "ALPHASPT_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([sys.executable, "-c", SERVER], env=env,
                                stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc)

        per_round = max(1, requests // rounds)
        results: dict[str, tuple[list[float], float]] = {
            "/healthz": ([], 0.0), "/api/v1/portfolio": ([], 0.0)}
        # Warm-up: connections, code paths, Redis pool.
        for path in results:
            asyncio.run(measure(base, path, headers, 200, concurrency))
        for _ in range(rounds):
            for path in results:
                lat, wall = asyncio.run(measure(base, path, headers, per_round, concurrency))
                acc, total = results[path]
                results[path] = (acc + lat, total + wall)
        lags = asyncio.run(stream_lag(base, token, redis_url, ws_clients, ws_updates))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out: dict[str, Any] = {
        path: (pct(lat, 0.5), pct(lat, 0.99), len(lat) / wall)
        for path, (lat, wall) in results.items()}
    out["stream_lags"] = lags
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=4000, help="per endpoint, all rounds")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--strategies", type=int, default=5)
    ap.add_argument("--ws-clients", type=int, default=50)
    ap.add_argument("--ws-updates", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        redis_server.start()
        try:
            out = run(redis_server.url, args.requests, args.concurrency, args.rounds,
                      args.strategies, args.ws_clients, args.ws_updates)
        finally:
            redis_server.stop()
    print(f"{'endpoint':<22}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for path in ("/healthz", "/api/v1/portfolio"):
        p50, p99, rps = out[path]
        print(f"{path:<22}{p50 * 1e3:>9.2f}{p99 * 1e3:>9.2f}{rps:>9.0f}")
    lags = out["stream_lags"]
    print(f"stream: {args.ws_clients} clients, {len(lags)} deliveries, lag p50 "
          f"{pct(lags, 0.5) * 1e3:.1f} ms, p99 {pct(lags, 0.99) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
