"""The operator end to end against a real kube-apiserver, PostgreSQL, Kafka and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from alphaspt.core.cache import PortfolioCacheWriter, PositionView, StrategyView
from alphaspt.core.config import KafkaConfig
from alphaspt.core.db import ConfigRepository, create_engine
from alphaspt.core.events import Command, Control, Topics, codec_for
from alphaspt.core.streaming import admin_client
from tests.integration.operator.conftest import (
    Kube,
    RunningOperator,
    TcpProxy,
    condition,
    eventually,
    profile_manifest,
    strategy_manifest,
)
from tests.integration.operator.conftest import (
    strategy_of as _ts,
)
from tests.integration.operator.conftest import (
    worker_of as _deployment,
)

pytestmark = [pytest.mark.integration, pytest.mark.kube]


@pytest.fixture(scope="module")
async def repo(operator: RunningOperator) -> Any:
    url = operator.settings.postgres.url
    assert url is not None
    repository = ConfigRepository(create_engine(url.get_secret_value()))
    yield repository
    await repository.close()


class ControlReader:
    """Reads control.commands from the current end (assigned, no consumer group join)."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self.consumer = Consumer({
            **kafka.client_config(),
            "group.id": f"control-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        })
        metadata = self.consumer.list_topics(Topics.CONTROL, timeout=10)
        partitions = list(metadata.topics[Topics.CONTROL].partitions)
        assignment = []
        for p in partitions:
            _low, high = self.consumer.get_watermark_offsets(
                TopicPartition(Topics.CONTROL, p), timeout=10)
            assignment.append(TopicPartition(Topics.CONTROL, p, high))
        self.consumer.assign(assignment)
        self.codec = codec_for(Topics.CONTROL)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> tuple[Control, float]:
        """The first matching event and when it was read (time.monotonic())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.02)
            if msg is None or msg.error():
                continue
            event = self.codec.decode(msg.value())
            assert isinstance(event, Control)
            if predicate(event):
                return event, time.monotonic()
        raise AssertionError("no matching control event")

    def close(self) -> None:
        self.consumer.close()


def test_crds_are_served_with_names_and_categories(kube: Kube, crds: list[dict[str, Any]]
                                                   ) -> None:
    resources = kube.get("/apis/alphaspt.io/v1alpha1")
    assert resources is not None
    by_name = {r["name"]: r for r in resources["resources"]}
    assert by_name["tradingstrategies"]["shortNames"] == ["ts"]
    assert by_name["riskprofiles"]["shortNames"] == ["rp"]
    assert by_name["tradingstrategies"]["categories"] == ["alphaspt"]
    assert "tradingstrategies/status" in by_name and "riskprofiles/status" in by_name


@pytest.mark.parametrize(("spec", "message"), [
    ({"resources": {"limits": {"cpu": "-1"}}}, "spec.resources.limits.cpu"),
    ({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
     "requests must not exceed"),
    ({"strategy": "Not A Name!"}, "spec.strategy"),
    ({"strategy": "pkg.module"}, "spec.strategy"),
    ({"riskProfileRef": None}, "spec.riskProfileRef: Required value"),
    ({"instruments": ["infy"]}, "spec.instruments[0]"),
    ({"instruments": ["INFY", "INFY"]}, "Duplicate value"),
    ({"instruments": []}, "spec.instruments"),
    ({"mode": "Live"}, "mode Live needs brokerSecretRef"),
    ({"desiredState": "Sleeping"}, "spec.desiredState"),
])
def test_invalid_strategies_are_refused(kube: Kube, namespace: str, name: str,
                                        spec: dict[str, Any], message: str) -> None:
    body = strategy_manifest(name, "any", **spec)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    response = kube.request("POST", kube.ts(namespace), body)
    assert response.status_code == 422, response.text
    assert message in response.json()["message"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"maxOrderQuantity": 0}, "spec.maxOrderQuantity"),
    ({"maxDailyLoss": -1}, "spec.maxDailyLoss"),
    ({"maxOrdersPerSecond": 11}, "spec.maxOrdersPerSecond"),
    ({"tradingWindow": {"start": "15:00", "end": "09:15"}}, "end must be after"),
    ({"allowedInstruments": ["not-upper"]}, "spec.allowedInstruments[0]"),
])
def test_invalid_risk_profiles_are_refused(kube: Kube, namespace: str, name: str,
                                           spec: dict[str, Any], message: str) -> None:
    response = kube.request("POST", kube.rp(namespace), profile_manifest(name, **spec))
    assert response.status_code == 422, response.text
    assert message in response.json()["message"]


def test_the_examples_are_accepted(kube: Kube, namespace: str) -> None:
    """``kubectl apply -f examples/`` (strict field validation, server-side dry run)."""
    examples = Path(__file__).resolve().parents[3] / "examples"
    applied = kube.kubectl("-n", namespace, "apply", "--dry-run=server",
                           "--validate=strict", "-f", str(examples))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(list(examples.glob("*.yaml")))


def test_invalid_names_are_refused(kube: Kube, namespace: str) -> None:
    body = strategy_manifest("dotted.name", "any")
    response = kube.request("POST", kube.ts(namespace), body)
    assert response.status_code == 422
    assert "metadata.name" in response.json()["message"]


async def test_create_reconciles_row_topics_and_deployment(
    kube: Kube, operator: RunningOperator, profile: str, name: str, repo: ConfigRepository,
    kafka: KafkaConfig,
) -> None:
    ns = operator.namespace
    created = kube.create(kube.ts(ns), strategy_manifest(name, profile))
    dep = await eventually(lambda: _deployment(kube, ns, name), what="Deployment")

    owner = dep["metadata"]["ownerReferences"]
    assert owner == [{"apiVersion": "alphaspt.io/v1alpha1", "kind": "TradingStrategy",
                      "name": name, "uid": created["metadata"]["uid"], "controller": True,
                      "blockOwnerDeletion": True}]
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "alphaspt-operator"
    assert labels["app.kubernetes.io/instance"] == name
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    template = spec["template"]
    assert template["metadata"]["annotations"]["alphaspt.io/config-hash"]
    container = template["spec"]["containers"][0]
    assert [*container["command"], *container["args"]] == [
        "alphaspt", "worker", "strategy-runner", "--strategy", name]
    assert container["image"] == "registry.example/alphaspt-worker:test"
    env = {e["name"]: e for e in container["env"]}
    assert env["ALPHASPT_STRATEGY"]["value"] == name
    assert env["ALPHASPT_NAMESPACE"]["value"] == ns
    assert env["ALPHASPT_POSTGRES__URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "alphaspt-connections", "key": "ALPHASPT_POSTGRES__URL", "optional": False}
    assert all("value" not in e for k, e in env.items() if "URL" in k or "SASL" in k)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}

    record = await eventually(lambda: repo.get_strategy(ns, name), what="row")
    assert record.generation == 1 and record.spec.instruments == ("INFY", "TCS")
    assert record.spec.params == {"quantity": 5, "threshold": 0.001}

    admin = admin_client(kafka)
    topics = admin.list_topics(timeout=10).topics
    assert f"strategy.{name}.state" in topics
    assert {Topics.TICKS, Topics.dlq(Topics.TICKS), Topics.CONTROL} <= set(topics)
    described = admin.describe_configs(
        [ConfigResource("topic", f"strategy.{name}.state")])
    (future,) = described.values()
    assert future.result(10)["cleanup.policy"].value == "compact"

    ts = await eventually(
        lambda: (t := _ts(kube, ns, name)) and condition(t, "WorkerReady") and t,
        what="status")
    assert ts["status"]["observedGeneration"] == 1
    assert condition(ts, "ConfigSynced")["status"] == "True"
    assert condition(ts, "TopicsReady")["status"] == "True"
    assert condition(ts, "WorkerReady")["reason"] == "RolloutPending"
    assert condition(ts, "Ready")["status"] == "False"
    assert ts["status"]["phase"] == "Starting"
    reasons = {e["reason"] for e in kube.events(ns, name)}
    assert {"DeploymentCreated", "ConfigSynced"} <= reasons

    rp = await eventually(
        lambda: (r := kube.get(kube.rp(ns, profile)))
        and name in (r.get("status") or {}).get("boundStrategies", []) and r,
        what="binding")
    assert rp["status"]["boundStrategyCount"] == 1


async def test_ready_follows_the_deployment(kube: Kube, operator: RunningOperator,
                                            profile: str, name: str) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    kube.simulate_rollout(ns, f"strategy-{name}")
    ts = await eventually(
        lambda: (t := _ts(kube, ns, name)) and condition(t, "Ready").get("status") == "True"
        and t, what="Ready")
    assert ts["status"]["phase"] == "Running"
    assert condition(ts, "WorkerReady")["reason"] == "WorkerAvailable"

    kube.simulate_rollout(ns, f"strategy-{name}", available=False)
    ts = await eventually(
        lambda: (t := _ts(kube, ns, name)) and condition(t, "Ready").get("status") == "False"
        and t, what="not Ready")
    assert ts["status"]["phase"] == "Degraded"
    assert condition(ts, "WorkerReady")["reason"] == "WorkerUnavailable"

    kube.simulate_rollout(ns, f"strategy-{name}")  # available again
    waited = await asyncio.to_thread(
        kube.kubectl, "-n", ns, "wait", "--for=condition=Ready", f"ts/{name}", "--timeout=15s")
    assert waited.returncode == 0, waited.stderr


async def test_steady_state_writes_nothing(kube: Kube, operator: RunningOperator,
                                           profile: str, name: str) -> None:
    """Status and Deployment are only written when they change: a resource at rest sees
    runtime refreshes (every 1 s here) and outage probes (every 1 s) but no writes."""
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    kube.simulate_rollout(ns, f"strategy-{name}")
    await eventually(lambda: condition(_ts(kube, ns, name), "Ready").get("status") == "True",
                     what="Ready")
    await asyncio.sleep(0.5)  # let the last watch events settle
    ts, dep = _ts(kube, ns, name), _deployment(kube, ns, name)
    assert ts is not None and dep is not None
    await asyncio.sleep(4.0)
    ts_after, dep_after = _ts(kube, ns, name), _deployment(kube, ns, name)
    assert ts_after is not None and dep_after is not None
    assert ts_after["metadata"]["resourceVersion"] == ts["metadata"]["resourceVersion"]
    assert dep_after["metadata"]["resourceVersion"] == dep["metadata"]["resourceVersion"]


async def test_update_changes_row_and_rolls_the_deployment(
    kube: Kube, operator: RunningOperator, profile: str, name: str, repo: ConfigRepository,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    dep = await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    old_hash = dep["spec"]["template"]["metadata"]["annotations"]["alphaspt.io/config-hash"]
    response = kube.patch(kube.ts(ns, name), {"spec": {
        "params": {"quantity": 8, "allowShort": True}, "instruments": ["INFY", "TCS", "M&M"],
        "resources": {"limits": {"cpu": "1"}}}})
    assert response.status_code == 200, response.text

    def rolled() -> dict[str, Any] | None:
        d = _deployment(kube, ns, name)
        annotations = (d or {}).get("spec", {}).get("template", {}).get("metadata", {}).get(
            "annotations", {})
        return d if annotations.get("alphaspt.io/config-hash") not in (None, old_hash) else None

    dep = await eventually(rolled, what="new config hash")
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "1", "memory": "512Mi"}
    record = await eventually(
        lambda: _row_with_generation(repo, ns, name, 2), what="row of generation 2")
    assert record.spec.params == {"quantity": 8, "threshold": 0.001, "allowShort": True}
    assert record.spec.instruments == ("INFY", "TCS", "M&M")
    await eventually(
        lambda: (_ts(kube, ns, name) or {}).get("status", {}).get("observedGeneration") == 2,
        what="observedGeneration 2")
    # The operator settles: a further reconcile patches nothing.
    generation = dep["metadata"]["generation"]
    await asyncio.sleep(0.5)
    again = _deployment(kube, ns, name)
    assert again is not None and again["metadata"]["generation"] == generation


async def _row_with_generation(repo: ConfigRepository, ns: str, name: str, gen: int) -> Any:
    record = await repo.get_strategy(ns, name)
    return record if record is not None and record.generation == gen else None


async def test_pause_scales_to_zero_and_announces(
    kube: Kube, operator: RunningOperator, profile: str, name: str, repo: ConfigRepository,
    kafka: KafkaConfig,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    reader = ControlReader(kafka)
    try:
        kube.patch(kube.ts(ns, name), {"spec": {"desiredState": "Paused"}})
        event, _ = reader.wait_for(lambda e: e.target == name)
        assert event.command is Command.PAUSE and event.target_kind == "TradingStrategy"
        await eventually(lambda: (_deployment(kube, ns, name) or {})["spec"]["replicas"] == 0,
                         what="0 replicas")
        kube.simulate_rollout(ns, f"strategy-{name}")
        ts = await eventually(
            lambda: (t := _ts(kube, ns, name))
            and condition(t, "Ready").get("status") == "True" and t, what="Ready while paused")
        assert ts["status"]["phase"] == "Paused"
        assert condition(ts, "WorkerReady")["reason"] == "ScaledToZero"
        record = await repo.get_strategy(ns, name)
        assert record is not None and record.spec.desired_state.value == "Paused"

        kube.patch(kube.ts(ns, name), {"spec": {"desiredState": "Running"}})
        event, _ = reader.wait_for(lambda e: e.target == name)
        assert event.command is Command.RESUME
        await eventually(lambda: (_deployment(kube, ns, name) or {})["spec"]["replicas"] == 1,
                         what="1 replica")
    finally:
        reader.close()


async def test_drift_is_repaired(kube: Kube, operator: RunningOperator, profile: str,
                                 name: str) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    dep = await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    assert kube.delete(kube.deployment(ns, dep["metadata"]["name"])).status_code == 200
    again = await eventually(
        lambda: (d := _deployment(kube, ns, name))
        and d["metadata"]["uid"] != dep["metadata"]["uid"] and d, what="recreated")
    assert again["spec"]["replicas"] == 1

    hand_edit = {"spec": {"template": {"spec": {"containers": [{
        "name": "strategy-runner", "image": "evil:latest"}]}}}}
    assert kube.request("PATCH", kube.deployment(ns, again["metadata"]["name"]), hand_edit,
                        "application/strategic-merge-patch+json").status_code == 200
    await eventually(
        lambda: (_deployment(kube, ns, name) or {})["spec"]["template"]["spec"]["containers"][0][
            "image"] == "registry.example/alphaspt-worker:test", what="image restored")


async def test_kill_switch_reaches_control_topic_within_a_second(
    kube: Kube, operator: RunningOperator, profile: str, repo: ConfigRepository,
    kafka: KafkaConfig,
) -> None:
    ns = operator.namespace
    await eventually(lambda: condition(kube.get(kube.rp(ns, profile)), "Ready").get(
        "status") == "True", what="profile Ready")
    reader = ControlReader(kafka)
    try:
        started = time.monotonic()
        response = kube.patch(kube.rp(ns, profile), {"spec": {"killSwitch": True}})
        assert response.status_code == 200
        event, seen = reader.wait_for(
            lambda e: e.target == profile and e.command is Command.KILL_SWITCH)
        latency = seen - started
        print(f"kill switch: patch -> KILL_SWITCH consumed in {latency * 1000:.0f} ms")
        assert event.value is True and event.target_kind == "RiskProfile"
        assert latency < 1.0
    finally:
        reader.close()
    record = await eventually(
        lambda: _profile_with_kill_switch(repo, ns, profile), what="row kill switch")
    assert record.spec.kill_switch is True


async def _profile_with_kill_switch(repo: ConfigRepository, ns: str, name: str) -> Any:
    record = await repo.get_risk_profile(ns, name)
    return record if record is not None and record.spec.kill_switch else None


async def test_delete_archives_row_and_keeps_topics(
    kube: Kube, operator: RunningOperator, profile: str, name: str, repo: ConfigRepository,
    kafka: KafkaConfig,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    ts = await eventually(
        lambda: (t := _ts(kube, ns, name)) and condition(t, "TopicsReady") and t,
        what="reconciled")
    assert "alphaspt.io/finalizer" in ts["metadata"]["finalizers"]
    assert kube.delete(kube.ts(ns, name)).status_code == 200
    await eventually(lambda: _ts(kube, ns, name) is None, what="resource gone")
    assert _deployment(kube, ns, name) is None
    record = await repo.get_strategy(ns, name)
    assert record is not None and record.archived
    assert f"strategy.{name}.state" in admin_client(kafka).list_topics(timeout=10).topics


async def test_delete_topics_when_asked(
    kube: Kube, operator: RunningOperator, profile: str, name: str, kafka: KafkaConfig,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile, deleteTopicsOnDelete=True))
    await eventually(lambda: condition(_ts(kube, ns, name), "TopicsReady"), what="topics")
    kube.delete(kube.ts(ns, name))
    await eventually(lambda: _ts(kube, ns, name) is None, what="resource gone")
    topics = admin_client(kafka).list_topics(timeout=10).topics
    assert f"strategy.{name}.state" not in topics
    assert Topics.TICKS in topics  # shared topics are never deleted


async def test_missing_risk_profile_waits(kube: Kube, operator: RunningOperator,
                                          name: str) -> None:
    ns = operator.namespace
    rp = f"late-{name}"
    kube.create(kube.ts(ns), strategy_manifest(name, rp))
    ts = await eventually(
        lambda: (t := _ts(kube, ns, name)) and condition(t, "ConfigSynced") and t,
        what="ConfigSynced")
    assert condition(ts, "ConfigSynced")["reason"] == "RiskProfileNotFound"
    assert ts["status"]["phase"] == "Pending"
    assert _deployment(kube, ns, name) is None
    kube.create(kube.rp(ns), profile_manifest(rp))
    await eventually(lambda: _deployment(kube, ns, name), what="Deployment after the profile")


async def test_risk_profile_deletion_waits_for_its_strategies(
    kube: Kube, operator: RunningOperator, profile: str, name: str, repo: ConfigRepository,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    assert kube.delete(kube.rp(ns, profile)).status_code == 200
    await eventually(lambda: "DeletionBlocked" in {e["reason"] for e in kube.events(ns, profile)},
                     what="DeletionBlocked event")
    blocked = kube.get(kube.rp(ns, profile))
    assert blocked is not None and blocked["metadata"].get("deletionTimestamp")
    kube.delete(kube.ts(ns, name))
    await eventually(lambda: kube.get(kube.rp(ns, profile)) is None, what="profile gone")
    record = await repo.get_risk_profile(ns, profile)
    assert record is not None and record.archived


async def test_runtime_summary_comes_from_redis(kube: Kube, operator: RunningOperator,
                                                profile: str, name: str) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    url = operator.settings.redis.url
    assert url is not None
    writer = PortfolioCacheWriter.from_url(url.get_secret_value())
    writer.write_snapshot([StrategyView(
        name=name, positions=(PositionView(symbol="INFY", quantity=10, avg_price=1500.0,
                                           last_price=1512.5, realised_pnl=0.0,
                                           unrealised_pnl=125.0),),
        realised_pnl=40.0, unrealised_pnl=125.0, charges=3.25, net_pnl=161.75,
        updated_at=time.time())], publish=False)
    ts = await eventually(
        lambda: (t := _ts(kube, ns, name)) and (t.get("status") or {}).get("runtime") and t,
        what="runtime summary")
    runtime = ts["status"]["runtime"]
    assert runtime["positions"] == {"INFY": 10}
    assert runtime["netPnl"] == 161.75 and runtime["realisedPnl"] == 40
    assert runtime["lastHeartbeat"].endswith("Z")
    shown = (await asyncio.to_thread(kube.kubectl, "-n", ns, "get", "ts", name,
                                     "--no-headers")).stdout
    assert "161.75" in shown and "Paper" in shown


def test_immutable_fields_are_refused(kube: Kube, operator: RunningOperator, profile: str,
                                      name: str) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    response = kube.patch(kube.ts(ns, name), {"spec": {"strategy": "mean_reversion"}})
    assert response.status_code == 422
    assert "strategy is immutable" in response.json()["message"]
    response = kube.patch(kube.ts(ns, name), {"spec": {
        "mode": "Live", "brokerSecretRef": {"name": "kite"}}})
    assert response.status_code == 422
    assert "mode is immutable" in response.json()["message"]


def test_liveness_endpoint(operator: RunningOperator) -> None:
    port = operator.settings.operator.health_port
    response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False)
    assert response.status_code == 200


async def test_repointing_a_strategy_moves_its_binding(kube: Kube, operator: RunningOperator,
                                                       profile: str, name: str) -> None:
    ns = operator.namespace
    other = f"other-{name}"
    kube.create(kube.rp(ns), profile_manifest(other))
    kube.create(kube.ts(ns), strategy_manifest(name, profile))

    def bound(rp: str) -> list[str]:
        return list(((kube.get(kube.rp(ns, rp)) or {}).get("status") or {}).get(
            "boundStrategies", []))

    await eventually(lambda: bound(profile) == [name], what="bound to the first profile")
    kube.patch(kube.ts(ns, name), {"spec": {"riskProfileRef": other}})
    await eventually(lambda: bound(other) == [name] and bound(profile) == [],
                     what="binding moved")


async def test_deletion_completes_while_postgres_is_down(
    kube: Kube, operator: RunningOperator, profile: str, name: str, repo: ConfigRepository,
    postgres_proxy: TcpProxy,
) -> None:
    ns = operator.namespace
    kube.create(kube.ts(ns), strategy_manifest(name, profile))
    await eventually(lambda: _deployment(kube, ns, name), what="Deployment")
    postgres_proxy.cut()
    try:
        kube.delete(kube.ts(ns, name))
        # deletion_attempts=2, retry_delay=1 s: released after about a second.
        await eventually(lambda: _ts(kube, ns, name) is None, within=20, what="gone")
        warnings = await eventually(
            lambda: [e for e in kube.events(ns, name) if e["reason"] == "CleanupIncomplete"],
            what="Warning event")
        assert warnings[0]["type"] == "Warning"
        assert "row not archived" in warnings[0]["message"]
        assert _deployment(kube, ns, name) is None  # the worker is stopped regardless
    finally:
        postgres_proxy.restore()
    # Back up: the sweep (every resync interval) archives the orphaned row.
    record = await eventually(lambda: _archived(repo, ns, name), within=20, what="archived")
    assert record.archived


async def _archived(repo: ConfigRepository, ns: str, name: str) -> Any:
    record = await repo.get_strategy(ns, name)
    return record if record is not None and record.archived else None
