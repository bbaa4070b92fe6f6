"""The pure planning core: resources in, rows, topics, workers and Deployments out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from alphaspt.core.events import Topics
from alphaspt.core.specs import DesiredState, Manifest, RiskProfileSpec, TradingStrategySpec
from alphaspt.exceptions import DependencyNotReady, InvalidConfiguration
from alphaspt.operator.planning import (
    CONFIG_HASH_ANNOTATION,
    OwnerRef,
    PlanConfig,
    Resource,
    StrategyResource,
    parse_quantity,
    plan,
    plan_deployment,
    plan_strategy,
    resources_from_manifests,
)


def resource(name: str = "mom", ns: str = "trading", **spec: Any) -> StrategyResource:
    body = {"strategy": "momentum", "instruments": ["INFY", "TCS"], "riskProfileRef": "default",
            **spec}
    return Resource(name, TradingStrategySpec.model_validate(body), ns, 3)


def test_worker_of_a_strategy() -> None:
    p = plan_strategy(resource(params={"fast": 5}))
    w = p.worker
    assert w.name == "strategy-mom" and w.stage == "strategy-runner"
    assert w.argv == ("alphaspt", "worker", "strategy-runner", "--strategy", "mom")
    assert w.env["ALPHASPT_STRATEGY"] == "mom" and w.env["ALPHASPT_NAMESPACE"] == "trading"
    assert "ALPHASPT_POSTGRES__URL" in w.secret_env
    assert not set(w.env) & {*w.secret_env, *w.optional_secret_env}
    assert w.replicas == 1
    assert set(w.selector.items()) <= set(w.labels.items())
    assert w.labels["app.kubernetes.io/managed-by"] == "alphaspt-operator"
    assert p.row.generation == 3 and p.row.spec.params == {"fast": 5}
    assert p.row.upsert_args()["name"] == "mom"


@pytest.mark.parametrize(("state", "replicas"), [("Running", 1), ("Paused", 0), ("Stopped", 0)])
def test_replicas_follow_desired_state(state: str, replicas: int) -> None:
    assert plan_strategy(resource(desiredState=state)).worker.replicas == replicas


def test_config_hash_changes_with_config_but_not_with_desired_state() -> None:
    base = plan_strategy(resource()).worker.config_hash
    assert plan_strategy(resource()).worker.config_hash == base  # deterministic
    assert plan_strategy(resource(desiredState="Paused")).worker.config_hash == base
    assert plan_strategy(resource(deleteTopicsOnDelete=True)).worker.config_hash == base
    assert plan_strategy(resource(params={"fast": 6})).worker.config_hash != base
    assert plan_strategy(resource(instruments=["INFY"])).worker.config_hash != base
    assert plan_strategy(resource(image="other:1")).worker.config_hash != base
    assert plan_strategy(resource(resources={"limits": {"cpu": "2"}})).worker.config_hash != base


def test_resources_default_per_key_and_requests_fit_limits() -> None:
    config = PlanConfig(default_requests={"cpu": "200m", "memory": "256Mi"},
                        default_limits={"cpu": "1", "memory": "512Mi"})
    assert plan_strategy(resource(), config).worker.resources == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"}}
    given = plan_strategy(resource(resources={"limits": {"cpu": "100m"}}), config)
    # The defaulted request (200m) would exceed the explicit limit: lowered to it.
    assert given.worker.resources == {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"cpu": "100m", "memory": "512Mi"}}
    with pytest.raises(InvalidConfiguration, match="exceeds"):
        plan_strategy(resource(resources={"requests": {"memory": "1Gi"}}), config)
    with pytest.raises(InvalidConfiguration, match="quantity"):
        plan_strategy(resource(resources={"limits": {"cpu": "-1"}}), config)


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("0.5", Decimal("0.5")), ("2", Decimal(2)),
    ("1Ki", Decimal(1024)), ("1.5Gi", Decimal(1.5 * 1024**3)), ("1M", Decimal(10**6)),
    ("2e3", Decimal(2000)), ("+1", Decimal(1)), ("100n", Decimal("1E-7")),
])
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["-1", "1.2.3", "ten", "1Gb", ""])
def test_parse_quantity_refuses(text: str) -> None:
    with pytest.raises(InvalidConfiguration):
        parse_quantity(text)


def test_plan_has_rows_topics_and_workers() -> None:
    profiles = [Resource("default", RiskProfileSpec(), "trading", 1)]
    desired = plan([resource("b"), resource("a", desiredState="Paused")], profiles,
                   PlanConfig(partitions=6))
    assert [s.name for s in desired.strategies] == ["a", "b"]
    assert [w.name for w in desired.workers] == ["strategy-a", "strategy-b"]
    assert [w.replicas for w in desired.workers] == [0, 1]
    assert desired.risk_profiles[0].upsert_args()["name"] == "default"
    topics = {t.name: t for t in desired.topics}
    for shared in Topics.ALL:
        assert topics[shared].partitions == 6
        assert topics[Topics.dlq(shared)].partitions == 6
    state = topics["strategy.a.state"]
    assert state.partitions == 1 and state.config["cleanup.policy"] == "compact"
    for stage, copartitioned in Topics.CHANGELOG_STAGES.items():
        changelog = topics[Topics.changelog(stage, "default")]
        assert changelog.config == Topics.CHANGELOG_CONFIG
        assert changelog.partitions == (6 if copartitioned else 1)
    assert len(topics) == 2 * len(Topics.ALL) + len(Topics.CHANGELOG_STAGES) + 2
    assert [t.name for t in desired.topics] == sorted(topics)


def test_plan_needs_the_risk_profiles() -> None:
    with pytest.raises(DependencyNotReady, match="trading/a -> default"):
        plan([resource("a")], [])
    other_namespace = [Resource("default", RiskProfileSpec(), "elsewhere")]
    with pytest.raises(DependencyNotReady):
        plan([resource("a")], other_namespace)
    assert len(plan([resource("a")], [], require_profiles=False).workers) == 1


def test_plan_refuses_duplicates() -> None:
    with pytest.raises(InvalidConfiguration, match="twice"):
        plan([resource("a"), resource("a")], require_profiles=False)


def test_resources_from_manifests() -> None:
    manifests = [
        Manifest.model_validate({"apiVersion": "alphaspt.io/v1alpha1", "kind": "RiskProfile",
                                 "metadata": {"name": "default"},
                                 "spec": {"killSwitch": True}}),
        Manifest.model_validate({"apiVersion": "alphaspt.io/v1alpha1",
                                 "kind": "TradingStrategy",
                                 "metadata": {"name": "mom", "namespace": "desk"},
                                 "spec": {"strategy": "momentum", "instruments": ["INFY"],
                                          "riskProfileRef": "default"}}),
        Manifest.model_validate({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "x"}}),
    ]
    strategies, profiles = resources_from_manifests(manifests, namespace="trading")
    assert [(s.namespace, s.name) for s in strategies] == [("desk", "mom")]
    assert profiles[0].namespace == "trading" and profiles[0].spec.kill_switch
    bad = Manifest.model_validate({"apiVersion": "alphaspt.io/v1alpha1",
                                   "kind": "TradingStrategy", "metadata": {"name": "bad"},
                                   "spec": {"strategy": "momentum", "instruments": []}})
    with pytest.raises(InvalidConfiguration, match="TradingStrategy trading/bad"):
        resources_from_manifests([bad], namespace="trading")


def test_deployment_manifest() -> None:
    worker = plan_strategy(resource(params={"x": 1})).worker
    dep = plan_deployment(worker, OwnerRef("mom", "uid-1"), "worker:1",
                          connection_secret="conn", image_pull_policy="Always",
                          service_account="runner")
    assert dep["apiVersion"] == "apps/v1" and dep["kind"] == "Deployment"
    meta = dep["metadata"]
    assert meta["name"] == "strategy-mom" and meta["namespace"] == "trading"
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert meta["ownerReferences"][0]["controller"] is True
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"] == dict(worker.selector)
    template = spec["template"]
    assert template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == worker.config_hash
    assert template["metadata"]["labels"] == dict(worker.labels)
    pod = template["spec"]
    assert pod["serviceAccountName"] == "runner"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == "worker:1" and container["imagePullPolicy"] == "Always"
    assert [*container["command"], *container["args"]] == list(worker.argv)
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    for name in worker.secret_env:
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {
            "name": "conn", "key": name, "optional": False}}}
    for name in worker.optional_secret_env:
        assert env[name]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["ALPHASPT_STRATEGY"] == {"name": "ALPHASPT_STRATEGY", "value": "mom"}
    assert container["resources"] == {k: dict(v) for k, v in worker.resources.items()}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # The runner serves alphaspt.core.health on the metrics port; the probes use it.
    assert env["ALPHASPT_METRICS__PORT"]["value"] == "9090"
    assert env["ALPHASPT_METRICS__HOST"]["value"] == "0.0.0.0"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_spec_image_wins_over_the_default() -> None:
    worker = plan_strategy(resource(image="custom:2")).worker
    dep = plan_deployment(worker, OwnerRef("mom", "u"), "worker:1", connection_secret="c")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "custom:2"
    assert "serviceAccountName" not in dep["spec"]["template"]["spec"]


def test_paused_worker_renders_zero_replicas() -> None:
    worker = plan_strategy(resource(desiredState=DesiredState.PAUSED.value)).worker
    dep = plan_deployment(worker, OwnerRef("mom", "u"), "w", connection_secret="c")
    assert dep["spec"]["replicas"] == 0
