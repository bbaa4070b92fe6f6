"""The operator's reconcile speed against a real kube-apiserver, PostgreSQL, Kafka and Redis.

1. Apply -> Deployment: create one TradingStrategy and poll until its Deployment exists;
   ``--runs`` times (p50, p90, max).
2. 100 strategies: create ``--many`` TradingStrategies back to back and wait until every
   one is reconciled (Deployment created and status ConfigSynced/TopicsReady true for its
   generation).

Baseline, measured in the same run: the API server alone, creating the same Deployments
directly (one POST each, no operator). Ratios say what the operator adds on top.

    python bench/bench_operator.py [--runs 20] [--many 100]

Needs scripts/build-kube-apiserver.sh once. Everything runs on loopback in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaspt.core.config import (  # noqa: E402
    KafkaConfig,
    OperatorConfig,
    PostgresConfig,
    RedisConfig,
    Settings,
)
from alphaspt.core.specs import TradingStrategySpec  # noqa: E402
from alphaspt.local.servers import EmbeddedPostgres, EmbeddedRedis, Tansu  # noqa: E402
from alphaspt.operator.planning import (  # noqa: E402
    OwnerRef,
    PlanConfig,
    Resource,
    plan_deployment,
    plan_strategy,
)
from tests.integration.operator.conftest import (  # noqa: E402
    Kube,
    RunningOperator,
    condition,
    profile_manifest,
    strategy_manifest,
)
from tests.support.kube_apiserver import KubeApiServer  # noqa: E402


def wait(probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def baseline_deployment(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    """The Deployment the operator would render, for the API-server-only baseline."""
    spec = TradingStrategySpec.model_validate(strategy_manifest(name, "bench")["spec"])
    worker = plan_strategy(Resource(name, spec, ns, 1), PlanConfig()).worker
    body = plan_deployment(worker, OwnerRef(name, str(uuid.uuid4())), "worker:bench",
                           connection_secret="alphaspt-connections")
    body["metadata"]["name"] = f"baseline-{name}"
    body["metadata"]["labels"] = {"bench": "baseline"}  # not watched by the operator
    body["metadata"].pop("ownerReferences")
    return body


def is_reconciled(obj: dict[str, Any] | None) -> bool:
    return bool(obj) and all(
        condition(obj, t).get("status") == "True" and
        condition(obj, t).get("observedGeneration") == obj["metadata"]["generation"]  # type: ignore[index]
        for t in ("ConfigSynced", "TopicsReady"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--many", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="alphaspt-bench-") as tmp:
        state = Path(tmp)
        pg, redis, kafka = EmbeddedPostgres(state / "pg"), EmbeddedRedis(state / "redis"), \
            Tansu(state / "tansu")
        servers_started = time.monotonic()
        for server in (pg, redis, kafka):
            server.start()
        with KubeApiServer() as kube_server:
            print(f"servers up in {time.monotonic() - servers_started:.1f} s "
                  f"(kube-apiserver {kube_server.startup_seconds:.1f} s)")
            try:
                run(kube_server, pg.url, redis.url, kafka.bootstrap_servers, args)
            finally:
                for server in (kafka, redis, pg):
                    server.stop()


def run(kube_server: KubeApiServer, pg_url: str, redis_url: str, bootstrap: str,
        args: argparse.Namespace) -> None:
    kube = Kube(kube_server)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    yaml.safe_load(path.read_text()))
    wait(lambda: kube.get("/apis/alphaspt.io/v1alpha1"), timeout=30)
    ns = "bench"
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": ns}})
    db_url = create_database(pg_url)
    settings = Settings(
        namespace=ns,
        postgres=PostgresConfig(url=db_url),
        redis=RedisConfig(url=redis_url),
        kafka=KafkaConfig(bootstrap_servers=bootstrap, partitions=1),
        operator=OperatorConfig(kubeconfig=kube_server.kubeconfig_path, health_port=None,
                                metrics_port=None),
    )
    operator = RunningOperator(settings)
    started = time.monotonic()
    operator.start()
    print(f"operator ready in {time.monotonic() - started:.1f} s")
    try:
        kube.create(kube.rp(ns), profile_manifest("bench"))
        wait(lambda: condition(kube.get(kube.rp(ns, "bench")), "Ready").get("status") == "True")
        # Warm-up: topics, connection pools, first-call costs.
        kube.create(kube.ts(ns), strategy_manifest("warmup", "bench"))
        wait(lambda: kube.get(kube.deployment(ns, "strategy-warmup")))

        base, operated = [], []
        for i in range(args.runs):
            body = baseline_deployment(kube, ns, f"b{i}")
            t0 = time.monotonic()
            kube.create(kube.deployment(ns), body)
            base.append(time.monotonic() - t0)
            manifest = strategy_manifest(f"s{i}", "bench")
            t0 = time.monotonic()
            kube.create(kube.ts(ns), manifest)
            wait(functools.partial(kube.get, kube.deployment(ns, f"strategy-s{i}")))
            operated.append(time.monotonic() - t0)
        p50, p50_base = statistics.median(operated), statistics.median(base)
        print(f"\napply -> Deployment created, {args.runs} runs:")
        print(f"  operator  p50 {p50 * 1000:7.1f} ms  p90 {percentile(operated, 0.9) * 1000:7.1f}"
              f" ms  max {max(operated) * 1000:7.1f} ms")
        print(f"  baseline  p50 {p50_base * 1000:7.1f} ms  (POST of the same Deployment, no "
              f"operator)   ratio {p50 / p50_base:.1f}x")

        names = [f"m{i}" for i in range(args.many)]
        bodies = [baseline_deployment(kube, ns, name) for name in names]
        t0 = time.monotonic()
        for body in bodies:
            kube.create(kube.deployment(ns), body)
        baseline_many = time.monotonic() - t0

        t0 = time.monotonic()
        for name in names:
            kube.create(kube.ts(ns), strategy_manifest(name, "bench"))
        applied = time.monotonic() - t0
        wait(lambda: all(kube.get(kube.deployment(ns, f"strategy-{n}")) for n in names),
             timeout=300, interval=0.05)
        deployments = time.monotonic() - t0
        wait(lambda: _all_reconciled(kube, ns, names), timeout=300, interval=0.05)
        reconciled = time.monotonic() - t0
        print(f"\n{args.many} strategies applied back to back (apply took {applied:.2f} s):")
        print(f"  all Deployments created   {deployments:6.2f} s")
        print(f"  all reconciled (status)   {reconciled:6.2f} s   "
              f"{args.many / reconciled:.0f} strategies/s")
        print(f"  baseline                  {baseline_many:6.2f} s   ({args.many} Deployment "
              f"POSTs, no operator)   ratio {reconciled / baseline_many:.1f}x")
    finally:
        operator.stop()
        kube.close()


def _all_reconciled(kube: Kube, ns: str, names: list[str]) -> bool:
    listed = kube.get(kube.ts(ns)) or {}
    by_name = {i["metadata"]["name"]: i for i in listed.get("items", [])}
    return all(is_reconciled(by_name.get(n)) for n in names)


def create_database(url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(create())
    return url.rsplit("/", 1)[0] + f"/{name}"


if __name__ == "__main__":
    main()
