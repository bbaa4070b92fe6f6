"""Operating the operator with kubectl, against the real kube-apiserver (issue 13, item 4;
issue 12's Halted; issue 11's BrokerSecretMissing).

The session's operator resyncs every 600 s, so everything asserted here within seconds is
the work of a watch event, a retry or a probe, never of the resync.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import httpx
import pytest

from alphaspt.core.cache import PortfolioCacheWriter, StrategyView
from tests.integration.operator import conftest as k8s

pytestmark = [pytest.mark.integration, pytest.mark.kube]

PAUSE = "alphaspt.io/pause-reconciliation"


def _reason(kube: k8s.Kube, ns: str, name: str, type_: str = "Ready") -> str | None:
    return k8s.condition(k8s.strategy_of(kube, ns, name), type_).get("reason")


def _ready(kube: k8s.Kube, ns: str, name: str) -> bool:
    return k8s.condition(k8s.strategy_of(kube, ns, name), "Ready").get("status") == "True"


def _hash(dep: dict[str, Any] | None) -> str | None:
    return ((dep or {}).get("spec", {}).get("template", {}).get("metadata", {})
            .get("annotations", {}).get("alphaspt.io/config-hash"))


async def _running(kube: k8s.Kube, ns: str, name: str) -> dict[str, Any]:
    await k8s.eventually(lambda: k8s.worker_of(kube, ns, name), what="Deployment")
    kube.simulate_rollout(ns, f"strategy-{name}")
    return dict(await k8s.eventually(
        lambda: _ready(kube, ns, name) and k8s.strategy_of(kube, ns, name), what="Ready"))


@pytest.mark.parametrize(("spec", "words"), [
    ({"strategy": "nosuch"}, "unknown strategy 'nosuch'"),
    ({"params": {"fast": 5, "slow": 20}}, "spec.params.fast: unknown field"),
    ({"params": {"quantity": 0}}, "quantity"),
])
async def test_a_strategy_the_runner_would_refuse_never_gets_a_deployment(
    kube: k8s.Kube, operator: k8s.RunningOperator, profile: str, name: str, spec: dict[str, Any],
    words: str,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile, **spec))
    ts = await k8s.eventually(lambda: (t := k8s.strategy_of(kube, ns, name))
                          and k8s.condition(t, "Ready").get("reason") == "InvalidStrategy" and t,
                          what="InvalidStrategy")
    ready = k8s.condition(ts, "Ready")
    assert ready["status"] == "False" and words in ready["message"]
    assert ts["status"]["phase"] == "Failed"
    await asyncio.sleep(2.0)  # a retry or a Deployment event would have created it by now
    assert k8s.worker_of(kube, ns, name) is None
    warnings = [e for e in kube.events(ns, name) if e["reason"] == "InvalidStrategy"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    shown = await asyncio.to_thread(kube.kubectl, "-n", ns, "get", "ts", name, "-o", "wide")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()[:2]
    assert "REASON" in header and "MESSAGE" in header
    assert "InvalidStrategy" in row and words.split(":")[0] in row


async def test_a_reverted_edit_reconciles_at_once(kube: k8s.Kube, operator: k8s.RunningOperator,
                                                  profile: str, name: str) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile))
    await _running(kube, ns, name)
    before = _hash(k8s.worker_of(kube, ns, name))
    kube.patch(kube.ts(ns, name), {"spec": {"params": {"quantitty": 7}}})  # a typo
    await k8s.eventually(lambda: _reason(kube, ns, name) == "InvalidStrategy", what="refused")
    assert _hash(k8s.worker_of(kube, ns, name)) == before  # the last valid config runs on

    reverted = time.monotonic()
    kube.patch(kube.ts(ns, name), {"spec": {"params": {"quantitty": None}}})
    ts = await k8s.eventually(
        lambda: _ready(kube, ns, name) and k8s.strategy_of(kube, ns, name), within=15,
        what="Ready after the revert")
    took = time.monotonic() - reverted
    print(f"reverted edit reconciled in {took:.2f} s (resync: 600 s)")
    assert ts["status"]["phase"] == "Running"
    assert ts["status"]["observedGeneration"] == ts["metadata"]["generation"]
    assert k8s.condition(ts, "ConfigSynced")["reason"] == "Stored"


async def test_the_kill_switch_shows_on_bound_strategies(
    kube: k8s.Kube, operator: k8s.RunningOperator, profile: str, name: str,
) -> None:
    ns = operator.namespace
    other_profile = f"free-{name}"
    kube.create(kube.rp(ns), k8s.profile_manifest(other_profile))
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile))
    kube.create(kube.ts(ns), k8s.strategy_manifest(f"{name}-b", other_profile))
    ts = await _running(kube, ns, name)
    assert k8s.condition(ts, "Halted")["status"] == "False"
    await _running(kube, ns, f"{name}-b")

    engaged = time.monotonic()
    kube.patch(kube.rp(ns, profile), {"spec": {"killSwitch": True}})
    ts = await k8s.eventually(lambda: (t := k8s.strategy_of(kube, ns, name))
                          and t["status"]["phase"] == "Halted" and t, what="Halted")
    print(f"kill switch -> phase Halted in {time.monotonic() - engaged:.2f} s")
    halted = k8s.condition(ts, "Halted")
    assert (halted["status"], halted["reason"]) == ("True", "KillSwitch")
    assert profile in halted["message"]
    unbound = k8s.strategy_of(kube, ns, f"{name}-b")
    assert unbound is not None and unbound["status"]["phase"] == "Running"
    shown = await asyncio.to_thread(kube.kubectl, "-n", ns, "get", "ts", name, "--no-headers")
    assert "Halted" in shown.stdout

    kube.patch(kube.rp(ns, profile), {"spec": {"killSwitch": False}})
    await k8s.eventually(
        lambda: (k8s.strategy_of(kube, ns, name) or {})["status"]["phase"] == "Running",
        what="Running again")
    assert _reason(kube, ns, name, "Halted") == "KillSwitchOff"


def _bound(kube: k8s.Kube, ns: str, rp: str) -> tuple[list[str], int | None]:
    status = (kube.get(kube.rp(ns, rp)) or {}).get("status") or {}
    return list(status.get("boundStrategies") or []), status.get("boundStrategyCount")


async def test_binding_counts_drop_deleted_strategies_at_once(
    kube: k8s.Kube, operator: k8s.RunningOperator, profile: str, name: str,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), k8s.strategy_manifest(f"{name}-a", profile))
    kube.create(kube.ts(ns), k8s.strategy_manifest(f"{name}-b", profile))
    await k8s.eventually(lambda: _bound(kube, ns, profile) == ([f"{name}-a", f"{name}-b"], 2),
                     what="two bound")
    kube.delete(kube.ts(ns, f"{name}-a"))
    await k8s.eventually(lambda: _bound(kube, ns, profile) == ([f"{name}-b"], 1),
                     what="one bound after the deletion")


async def test_deleting_a_used_profile_is_blocked_visibly(
    kube: k8s.Kube, operator: k8s.RunningOperator, profile: str, name: str,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile))
    await k8s.eventually(lambda: k8s.worker_of(kube, ns, name), what="Deployment")
    await k8s.eventually(lambda: _bound(kube, ns, profile)[0] == [name], what="bound")
    assert kube.delete(kube.rp(ns, profile)).status_code == 200
    rp = await k8s.eventually(
        lambda: (r := kube.get(kube.rp(ns, profile)))
        and k8s.condition(r, "Ready").get("reason") == "DeletionBlocked" and r,
        what="DeletionBlocked k8s.condition")
    ready = k8s.condition(rp, "Ready")
    assert ready["status"] == "False" and name in ready["message"]
    assert rp["metadata"]["deletionTimestamp"]

    late = f"{name}-late"
    kube.create(kube.ts(ns), k8s.strategy_manifest(late, profile))
    await k8s.eventually(
        lambda: _reason(kube, ns, late, "ConfigSynced") == "RiskProfileTerminating",
        what="no binding to a terminating profile")
    await asyncio.sleep(3.0)  # about three of the finalizer's retries (retry_delay 1 s)
    assert k8s.worker_of(kube, ns, late) is None
    assert _bound(kube, ns, profile)[0] == [name]
    blocked = [e for e in kube.events(ns, profile) if e["reason"] == "DeletionBlocked"]
    assert len(blocked) == 1 and int(blocked[0].get("count") or 1) == 1, blocked
    assert blocked[0]["type"] == "Warning" and name in blocked[0]["message"]

    kube.delete(kube.ts(ns, name))
    await k8s.eventually(lambda: kube.get(kube.rp(ns, profile)) is None, what="profile gone")
    await k8s.eventually(lambda: _reason(kube, ns, late, "ConfigSynced") == "RiskProfileNotFound",
                     what="the late strategy waits for a profile")
    kube.delete(kube.ts(ns, late))


async def test_a_postgres_outage_shows_within_ten_seconds(
    kube: k8s.Kube, operator: k8s.RunningOperator, profile: str, name: str,
    postgres_proxy: k8s.TcpProxy,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile))
    await _running(kube, ns, name)
    postgres_proxy.cut()
    try:
        cut = time.monotonic()
        ts = await k8s.eventually(
            lambda: (t := k8s.strategy_of(kube, ns, name))
            and k8s.condition(t, "Ready").get("reason") == "DatabaseUnavailable" and t,
            within=10, what="DatabaseUnavailable")
        print(f"PostgreSQL outage shown in {time.monotonic() - cut:.2f} s")
        assert k8s.condition(ts, "ConfigSynced")["reason"] == "DatabaseUnavailable"
        assert ts["status"]["phase"] == "Running"  # the worker runs on: not "not running"
        shown = await asyncio.to_thread(kube.kubectl, "-n", ns, "get", "ts", name,
                                        "--no-headers")
        assert "DatabaseUnavailable" in shown.stdout
    finally:
        postgres_proxy.restore()
    restored = time.monotonic()
    await k8s.eventually(lambda: _ready(kube, ns, name), within=10, what="Ready after the outage")
    print(f"PostgreSQL recovery shown in {time.monotonic() - restored:.2f} s")


async def test_status_pnl_is_rate_limited_with_counts_and_never_a_namesakes(
    kube: k8s.Kube, operator: k8s.RunningOperator, profile: str, name: str,
) -> None:
    ns = operator.namespace
    url = operator.settings.redis.url
    assert url is not None
    writer = PortfolioCacheWriter.from_url(url.get_secret_value())

    def publish(net: float, at: float, **counts: int) -> None:
        writer.write_snapshot([StrategyView(name=name, realised_pnl=net + 2.5, charges=2.5,
                                            net_pnl=net, updated_at=at, **counts)],
                              publish=False)

    publish(-999.0, time.time() - 120, orders=50)  # a deleted strategy of the same name
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile))
    await k8s.eventually(lambda: k8s.worker_of(kube, ns, name), what="Deployment")
    await asyncio.sleep(3.0)  # three runtime refreshes
    assert "runtime" not in ((k8s.strategy_of(kube, ns, name) or {}).get("status") or {})

    seen: list[float] = []
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 5.0:  # a new P&L every 0.1 s for 5 s
        step += 1
        publish(float(step), time.time(), orders=step, fills=step, rejections=1)
        runtime = ((k8s.strategy_of(kube, ns, name) or {}).get("status") or {}).get("runtime")
        if runtime and (not seen or seen[-1] != runtime["netPnl"]):
            seen.append(runtime["netPnl"])
        await asyncio.sleep(0.1)
    # runtime_write_interval is 2 s here: at most one write per 2 s (+1 for the edges).
    assert 1 <= len(seen) <= 4, seen
    runtime = await k8s.eventually(
        lambda: ((r := ((k8s.strategy_of(kube, ns, name) or {}).get("status") or {}).get("runtime"))
                 and r["orders"] == step and r), what="the last snapshot")
    assert runtime["charges"] == 2.5 and runtime["fills"] == step
    assert runtime["rejections"] == 1 and runtime["netPnl"] == float(step)


async def test_pause_annotation_stops_reconciling(kube: k8s.Kube, operator: k8s.RunningOperator,
                                                  profile: str, name: str) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile))
    dep = await k8s.eventually(lambda: k8s.worker_of(kube, ns, name), what="Deployment")
    before = _hash(dep)
    kube.patch(kube.ts(ns, name), {"metadata": {"annotations": {PAUSE: "true"}}})
    paused = await k8s.eventually(
        lambda: k8s.condition(k8s.strategy_of(kube, ns, name), "ReconciliationPaused"),
        what="ReconciliationPaused")
    assert paused["status"] == "True"
    kube.patch(kube.ts(ns, name), {"spec": {"params": {"quantity": 9}}})
    kube.delete(kube.deployment(ns, f"strategy-{name}"))
    await asyncio.sleep(3.0)
    assert k8s.worker_of(kube, ns, name) is None  # neither repaired nor rolled

    kube.patch(kube.ts(ns, name), {"metadata": {"annotations": {PAUSE: None}}})
    dep = await k8s.eventually(lambda: k8s.worker_of(kube, ns, name), what="reconciled again")
    assert _hash(dep) != before
    await k8s.eventually(
        lambda: not k8s.condition(k8s.strategy_of(kube, ns, name), "ReconciliationPaused"),
        what="condition removed")


def _secret(name: str) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"api_key": b64("k-4f1e"), "api_secret": b64("s-9b2c"),
                     "access_token": b64("t-77d0")}}


async def test_a_live_strategy_waits_for_its_broker_secret_and_mounts_only_it(
    kube: k8s.Kube, operator: k8s.RunningOperator, profile: str, name: str,
) -> None:
    ns = operator.namespace
    secret = f"kite-{name}"
    kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile, mode="Live",
                                               brokerSecretRef={"name": secret}))
    ts = await k8s.eventually(lambda: (t := k8s.strategy_of(kube, ns, name))
                          and k8s.condition(t, "Ready").get("reason") == "BrokerSecretMissing"
                          and t, what="BrokerSecretMissing")
    assert secret in k8s.condition(ts, "Ready")["message"]
    await asyncio.sleep(2.0)
    assert k8s.worker_of(kube, ns, name) is None

    kube.create(f"/api/v1/namespaces/{ns}/secrets", _secret(secret))
    dep = await k8s.eventually(lambda: k8s.worker_of(kube, ns, name), what="Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "valueFrom" in e}
    assert {r["name"] for r in refs.values()} == {"alphaspt-connections", secret}
    assert refs["ALPHASPT_KITE__API_KEY"] == {"name": secret, "key": "api_key",
                                              "optional": False}
    assert refs["ALPHASPT_KITE__API_SECRET"]["key"] == "api_secret"
    assert refs["ALPHASPT_KITE__ACCESS_TOKEN"]["key"] == "access_token"
    assert "envFrom" not in container
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["alphaspt.io/broker-secret-version"]
    copied = str(k8s.strategy_of(kube, ns, name)) + str(dep) + str(kube.events(ns, name))
    assert not [v for v in ("k-4f1e", "s-9b2c", "t-77d0", "azQtNGYxZQ") if v in copied]


def test_kubectl_explain_explains(kube: k8s.Kube, crds: list[dict[str, Any]]) -> None:
    explained = kube.kubectl("explain", "tradingstrategies.spec.brokerSecretRef.name")
    assert explained.returncode == 0, explained.stderr
    assert "api_key" in explained.stdout
    explained = kube.kubectl("explain", "riskprofiles.status.boundStrategyCount")
    assert "bound to this profile" in explained.stdout


async def test_metrics_and_object_names_in_log_lines(kube: k8s.Kube, operator: k8s.RunningOperator,
                                                     profile: str, name: str) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in (
        "kopf.objects", "alphaspt.operator.strategies", "alphaspt.operator.riskprofiles",
        "alphaspt.operator.handlers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(keep)
        lg.setLevel(logging.DEBUG)
    try:
        ns = operator.namespace
        kube.create(kube.ts(ns), k8s.strategy_manifest(name, profile, params={"nope": 1}))
        await k8s.eventually(lambda: _reason(kube, ns, name) == "InvalidStrategy", what="refused")
        await asyncio.sleep(0.5)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(keep)
            lg.setLevel(level)
    lines = [r.getMessage() for r in records]
    assert any(f"[TradingStrategy {operator.namespace}/{name}]" in line for line in lines), lines
    assert all(line.startswith(("[TradingStrategy ", "[RiskProfile ", "[Deployment "))
               for line in lines), [ln for ln in lines if not ln.startswith("[")]

    port = operator.settings.operator.metrics_port
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    reconciles = samples['alphaspt_operator_reconciles_total{handler="reconcile",'
                         'kind="TradingStrategy"}']
    errors = samples['alphaspt_operator_reconcile_errors_total{error="permanent",'
                     'handler="reconcile",kind="TradingStrategy"}']
    assert reconciles >= 1 and errors >= 1
    assert samples['alphaspt_operator_reconcile_duration_seconds_count{handler="reconcile",'
                   'kind="RiskProfile"}'] >= 1
