"""Latency and throughput of ``GET /api/v1/portfolio`` against ``GET /healthz``.

Baseline, measured in the same run on the same server: ``/healthz`` (no token check, no
Redis). The candidate ``/api/v1/portfolio`` checks the bearer token and reads one Redis
hash. The server is the real entry point, :func:`alphaspt.api.app.run`, in a subprocess on
a free loopback port, against an embedded Redis seeded with ``--strategies`` strategies.
The client is httpx (asyncio) with ``--concurrency`` connections; the two endpoints are
measured in alternating rounds so drift hits both. Bounded: ``--requests`` per endpoint.

    python bench/bench_api.py [--requests 4000] [--concurrency 8] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=4000, help="per endpoint, all rounds")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--strategies", type=int, default=5)
    args = ap.parse_args()

    token = secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {token}"}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis")
        redis_server.start()
        proc: subprocess.Popen[bytes] | None = None
        try:
            seed(redis_server.url, args.strategies)
            port = free_port()
            env = {
                **os.environ,
                "ALPHASPT_SETTINGS_FILE": "/nonexistent/settings.toml",
                "ALPHASPT_API__HOST": "127.0.0.1",
                "ALPHASPT_API__PORT": str(port),
                "ALPHASPT_API__TOKEN": token,
                "ALPHASPT_REDIS__URL": redis_server.url,
                "ALPHASPT_LOG_LEVEL": "WARNING",
            }
            proc = subprocess.Popen([sys.executable, "-c", SERVER], env=env,
                                    stdout=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, proc)

            per_round = max(1, args.requests // args.rounds)
            results: dict[str, tuple[list[float], float]] = {
                "/healthz": ([], 0.0), "/api/v1/portfolio": ([], 0.0)}
            # Warm-up: connections, code paths, Redis pool.
            for path in results:
                asyncio.run(measure(base, path, headers, 200, args.concurrency))
            for _ in range(args.rounds):
                for path in results:
                    lat, wall = asyncio.run(
                        measure(base, path, headers, per_round, args.concurrency))
                    acc, total = results[path]
                    results[path] = (acc + lat, total + wall)
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            redis_server.stop()

    print(f"{args.rounds} rounds x {per_round} requests per endpoint, "
          f"concurrency {args.concurrency}, {args.strategies} strategies in Redis, "
          f"uvicorn in a subprocess, httpx client; {os.cpu_count()} CPUs shared")
    print(f"{'endpoint':<22}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'req/s':>9}")
    stats = {}
    for path, (lat, wall) in results.items():
        rps = len(lat) / wall
        stats[path] = (pct(lat, 0.5), pct(lat, 0.99), rps)
        print(f"{path:<22}{pct(lat, 0.5) * 1e3:>9.2f}{pct(lat, 0.99) * 1e3:>9.2f}"
              f"{statistics.fmean(lat) * 1e3:>9.2f}{rps:>9.0f}")
    b, c = stats["/healthz"], stats["/api/v1/portfolio"]
    print(f"ratio portfolio/healthz: p50 x{c[0] / b[0]:.2f}, p99 x{c[1] / b[1]:.2f}, "
          f"throughput x{c[2] / b[2]:.2f}")


if __name__ == "__main__":
    main()
