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
        for server in (pg, redis, kafka):
            server.start()
        try:
            out = measure(pg.url, redis.url, kafka.bootstrap_servers, args.runs, args.many)
        finally:
            for server in (kafka, redis, pg):
                server.stop()
    for key, value in out.items():
        print(f"  {key:40s} {value:10.4g}")


def measure(pg_url: str, redis_url: str, bootstrap: str, runs: int,
            many: int) -> dict[str, float]:
    """Seconds: p50 apply → Deployment one at a time (``runs``) and back to back
    (``many``), each beside the API server alone creating the same Deployment."""
    with KubeApiServer() as kube_server:
        return _measure(kube_server, pg_url, redis_url, bootstrap, runs, many)


def _measure(kube_server: KubeApiServer, pg_url: str, redis_url: str, bootstrap: str,
             runs: int, many: int) -> dict[str, float]:
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
    operator.start()
    try:
        kube.create(kube.rp(ns), profile_manifest("bench"))
        wait(lambda: condition(kube.get(kube.rp(ns, "bench")), "Ready").get("status") == "True")
        # Warm-up: topics, connection pools, first-call costs.
        kube.create(kube.ts(ns), strategy_manifest("warmup", "bench"))
        wait(lambda: kube.get(kube.deployment(ns, "strategy-warmup")))

        base, operated = [], []
        for i in range(runs):  # interleaved: baseline POST, then one apply
            body = baseline_deployment(kube, ns, f"b{i}")
            t0 = time.monotonic()
            kube.create(kube.deployment(ns), body)
            base.append(time.monotonic() - t0)
            manifest = strategy_manifest(f"s{i}", "bench")
            t0 = time.monotonic()
            kube.create(kube.ts(ns), manifest)
            wait(functools.partial(kube.get, kube.deployment(ns, f"strategy-s{i}")))
            operated.append(time.monotonic() - t0)

        names = [f"m{i}" for i in range(many)]
        bodies = [baseline_deployment(kube, ns, name) for name in names]
        base_many = []
        t0 = time.monotonic()
        for body in bodies:
            t1 = time.monotonic()
            kube.create(kube.deployment(ns), body)
            base_many.append(time.monotonic() - t1)
        baseline_all = time.monotonic() - t0

        applied: dict[str, float] = {}
        t0 = time.monotonic()
        for name in names:
            kube.create(kube.ts(ns), strategy_manifest(name, "bench"))
            applied[name] = time.monotonic()
        seen: dict[str, float] = {}

        def all_seen() -> bool:
            listed = kube.get(kube.deployment(ns)) or {}
            now = time.monotonic()
            for item in listed.get("items", []):
                name = item["metadata"]["name"].removeprefix("strategy-")
                if name in applied and name not in seen:
                    seen[name] = now
            return len(seen) == len(applied)

        wait(all_seen, timeout=300, interval=0.02)
        deployments = time.monotonic() - t0
        wait(lambda: _all_reconciled(kube, ns, names), timeout=300, interval=0.05)
        reconciled = time.monotonic() - t0
        return {
            f"apply_p50_{runs}": statistics.median(operated),
            f"apply_p90_{runs}": percentile(operated, 0.9),
            f"post_p50_{runs}": statistics.median(base),
            f"apply_p50_{many}": statistics.median(seen[n] - applied[n] for n in names),
            f"post_p50_{many}": statistics.median(base_many),
            f"all_deployments_{many}": deployments,
            f"all_reconciled_{many}": reconciled,
            f"all_posts_{many}": baseline_all,
        }
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
