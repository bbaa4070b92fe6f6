"""The Helm chart (helm/alphaspt): renders, lints, validates, and is locked down.

Every test that takes ``objects`` or ``workloads`` runs once per value set of conftest's
VALUE_SETS (default, external Redpanda with SASL, dependencies enabled, production extras,
the kind/Tilt development values).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from alphaspt.core.config import ApiConfig, KafkaConfig, MetricsConfig, OperatorConfig, Settings

# No type information ships with it: typed as Any.
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "helm" / "alphaspt"
NAMESPACE = "trading"
RELEASE = "alphaspt"
STAGES = ("market-feed", "feature-engine", "risk-manager", "trading-engine", "portfolio-manager")
# Kinds outside the Kubernetes API that the chart may render (no upstream schema shipped).
THIRD_PARTY_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

Objects = list[dict[str, Any]]
Workloads = list[tuple[str, dict[str, Any]]]
Render = Callable[..., dict[str, str]]


def _all_containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _by_kind(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _deployment(objects: Objects, name: str) -> dict[str, Any]:
    matches = [o for o in _by_kind(objects, "Deployment") if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one Deployment {name}"
    return matches[0]


# -- rendering and validation ----------------------------------------------------------------

def test_schema_version_is_the_newest_shipped() -> None:
    versions = kubernetes_validate.utils.all_versions()
    newest = max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert kubernetes_validate.utils.latest_version() == newest
    assert tuple(int(p) for p in newest.split(".")[:2]) >= (1, 33)


def test_lint_passes_strict(chart_path: Path, value_set: str,
                            value_sets: dict[str, dict[str, Any]]) -> None:
    report = helm.lint(chart_path, value_sets[value_set], strict=True, namespace=NAMESPACE,
                       kube_version="v" + kubernetes_validate.utils.latest_version())
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems
    assert not report["errors"]


def test_every_manifest_validates_against_kubernetes_schemas(objects: Objects) -> None:
    version = kubernetes_validate.utils.latest_version()
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in THIRD_PARTY_KINDS:
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 10


def test_service_monitor_is_well_formed(render: Render, to_objects: Any) -> None:
    """ServiceMonitor has no upstream schema here: check its shape by hand."""
    objects = to_objects(render({"metrics": {"serviceMonitor": {"enabled": True}}}))
    [monitor] = _by_kind(objects, "ServiceMonitor")
    endpoints = {e["port"]: e for e in monitor["spec"]["endpoints"]}
    assert set(endpoints) == {"metrics", "http"}
    assert endpoints["http"]["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "alphaspt-connections", "key": "ALPHASPT_API__TOKEN"},
    }
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [s for s in _by_kind(objects, "Service")
                if selector.items() <= s["metadata"]["labels"].items()]
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    assert ports == {"metrics", "http"}


def test_default_render_has_the_expected_workloads(rendered_sets: dict[str, Objects]) -> None:
    names = {o["metadata"]["name"] for o in _by_kind(rendered_sets["default"], "Deployment")}
    assert names == {f"{RELEASE}-operator", f"{RELEASE}-api",
                     *(f"{RELEASE}-{stage}" for stage in STAGES)}
    # No strategy runner: the operator creates those, one per TradingStrategy.
    assert not any("strategy-runner" in name for name in names)


def test_every_object_is_namespaced_to_the_release(objects: Objects) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in objects:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
            assert NAMESPACE in obj["metadata"]["name"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


# -- pod security ----------------------------------------------------------------------------

def test_every_pod_runs_restricted(workloads: Workloads) -> None:
    assert workloads
    for name, spec in workloads:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        assert not any("hostPath" in v for v in spec.get("volumes", [])), name
        for container in _all_containers(spec):
            ctx = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["privileged"] is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where


def test_every_container_has_probes_and_resources(workloads: Workloads) -> None:
    for name, spec in workloads:
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container.get(probe), f"{where} has no {probe}"
                handler = container[probe].get("httpGet") or container[probe].get("tcpSocket")
                if handler is not None:
                    named = {p["name"] for p in container.get("ports", [])}
                    port = handler["port"]
                    assert isinstance(port, int) or port in named, f"{where}: {port}"
        for container in _all_containers(spec):
            where = f"{name}/{container['name']}"
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources[kind].keys(), f"{where} {kind}"


def test_writable_paths_are_emptydirs_only(workloads: Workloads) -> None:
    for name, spec in workloads:
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in _all_containers(spec):
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                assert "emptyDir" in volume or mount.get("readOnly") is True, (name, mount)
        tmp = [m for c in spec["containers"] for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert len(tmp) == len(spec["containers"]), name


def test_no_service_account_token_except_the_operators(workloads: Workloads) -> None:
    for name, spec in workloads:
        if name == f"{RELEASE}-operator":
            assert spec["serviceAccountName"] == f"{RELEASE}-operator"
            assert spec["automountServiceAccountToken"] is True
        else:
            assert spec["serviceAccountName"] == f"{RELEASE}-workload", name
            assert spec["automountServiceAccountToken"] is False, name


# -- credentials -----------------------------------------------------------------------------

# Variables that carry a credential (a Secret's *name*, e.g. ..._CONNECTION_SECRET, is not one).
_CREDENTIAL_ENV = re.compile(r"(PASSWORD|TOKEN|API_KEY|API_SECRET|POSTGRES__URL|REDIS__URL)$")


def test_credentials_come_only_from_secret_references(objects: Objects,
                                                      workloads: Workloads) -> None:
    assert not _by_kind(objects, "Secret"), "the chart must never hold a credential"
    for name, spec in workloads:
        for container in _all_containers(spec):
            for env in container.get("env", []):
                if _CREDENTIAL_ENV.search(env["name"]):
                    assert "value" not in env, f"{name}: {env['name']} is a literal"
                    assert "secretKeyRef" in env["valueFrom"], f"{name}: {env['name']}"


def test_stages_and_operator_read_the_connection_secret_like_the_runners(
    value_set: str, value_sets: dict[str, dict[str, Any]], workloads: Workloads
) -> None:
    """Same Secret, same keys (the variable names) as the operator's strategy runners."""
    secret = value_sets[value_set].get("connections", {}).get("existingSecret",
                                                               "alphaspt-connections")
    required = {"ALPHASPT_KAFKA__BOOTSTRAP_SERVERS", "ALPHASPT_POSTGRES__URL",
                "ALPHASPT_REDIS__URL"}
    optional = {"ALPHASPT_KAFKA__SECURITY_PROTOCOL", "ALPHASPT_KAFKA__SASL_MECHANISM",
                "ALPHASPT_KAFKA__SASL_USERNAME", "ALPHASPT_KAFKA__SASL_PASSWORD"}
    for name, spec in workloads:
        if name == f"{RELEASE}-api":
            continue
        [container] = spec["containers"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
                if "secretKeyRef" in e.get("valueFrom", {})}
        assert set(refs) == required | optional, name
        for var, ref in refs.items():
            assert ref["name"] == secret and ref["key"] == var, (name, ref)
            assert ref.get("optional", False) is (var in optional), (name, var)
        operator_env = {e["name"]: e.get("value") for e in container["env"]}
        if name == f"{RELEASE}-operator":
            assert operator_env["ALPHASPT_OPERATOR__CONNECTION_SECRET"] == secret


def test_api_gets_redis_and_its_token_only(objects: Objects) -> None:
    [container] = _deployment(objects, f"{RELEASE}-api")["spec"]["template"]["spec"]["containers"]
    secret_env = {e["name"] for e in container["env"] if "valueFrom" in e
                  and "secretKeyRef" in e["valueFrom"]}
    assert secret_env == {"ALPHASPT_REDIS__URL", "ALPHASPT_API__TOKEN"}
    assert "envFrom" not in container


def test_kite_credentials_reach_only_the_broker_facing_stages(
    rendered_sets: dict[str, Objects], pod_specs_of: Any
) -> None:
    with_kite = {name: spec for name, spec in pod_specs_of(rendered_sets["production-extras"])}
    for name, spec in with_kite.items():
        [container] = spec["containers"]
        env_from = container.get("envFrom", [])
        if name in {f"{RELEASE}-market-feed", f"{RELEASE}-trading-engine"}:
            assert env_from == [{"secretRef": {"name": "kite-credentials"}}], name
        else:
            assert env_from == [], name


# -- the settings the processes read ---------------------------------------------------------

def _plain_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _unknown_settings(workloads: Workloads) -> set[str]:
    """ALPHASPT_* variables the chart sets that Settings would ignore (it ignores unknown
    top-level keys silently, so a misspelt variable is a silent misconfiguration)."""
    blocks: dict[str, type[Any]] = {
        "KAFKA": KafkaConfig, "API": ApiConfig, "OPERATOR": OperatorConfig,
        "METRICS": MetricsConfig,
    }
    top_level = set(Settings.model_fields)
    unknown = set()
    for _, spec in workloads:
        for container in spec["containers"]:
            for env in container["env"]:
                var = env["name"]
                if not var.startswith("ALPHASPT_"):
                    continue
                key = var.removeprefix("ALPHASPT_")
                block, _, field = key.partition("__")
                model = blocks.get(block)
                known = block.lower() in top_level and (
                    not field or model is None or field.lower() in model.model_fields)
                if not known:
                    unknown.add(var)
    return unknown


def test_every_alphaspt_variable_is_a_known_setting(workloads: Workloads) -> None:
    """Including the stages' ALPHASPT_METRICS__HOST/PORT, where their probes and the
    ServiceMonitor point (alphaspt.core.health)."""
    assert not _unknown_settings(workloads)


def test_operator_settings_parse_as_operator_config(objects: Objects) -> None:
    [container] = _deployment(objects, f"{RELEASE}-operator")["spec"]["template"]["spec"][
        "containers"]
    env = _plain_env(container)
    fields = {k.removeprefix("ALPHASPT_OPERATOR__").lower(): v for k, v in env.items()
              if k.startswith("ALPHASPT_OPERATOR__")}
    parsed = {k: json.loads(v) if v.startswith("{") else v for k, v in fields.items()}
    config = OperatorConfig.model_validate(parsed)
    worker_image = next(
        c["image"] for n, s in [("api", _deployment(objects, f"{RELEASE}-api"))]
        for c in s["spec"]["template"]["spec"]["containers"]
    )
    assert config.worker_image == worker_image
    assert config.service_account == f"{RELEASE}-workload"
    assert config.health_port == next(
        p["containerPort"] for p in container["ports"] if p["name"] == "health")
    assert config.metrics_port == next(
        p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    assert set(config.default_requests) == {"cpu", "memory"}
    assert set(config.default_limits) == {"cpu", "memory"}


def test_api_listens_where_its_probes_and_service_look(objects: Objects) -> None:
    [container] = _deployment(objects, f"{RELEASE}-api")["spec"]["template"]["spec"]["containers"]
    env = _plain_env(container)
    config = ApiConfig(host=env["ALPHASPT_API__HOST"], port=int(env["ALPHASPT_API__PORT"]))
    assert config.host == "0.0.0.0"
    [port] = container["ports"]
    assert port == {"name": "http", "containerPort": config.port, "protocol": "TCP"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


# -- workload shape ---------------------------------------------------------------------------

def test_one_operator_replaced_never_overlapping(objects: Objects) -> None:
    operator = _deployment(objects, f"{RELEASE}-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}


def test_broker_facing_and_risk_stages_never_overlap(objects: Objects) -> None:
    for stage in ("market-feed", "risk-manager", "trading-engine", "portfolio-manager"):
        deployment = _deployment(objects, f"{RELEASE}-{stage}")
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}, stage
        assert deployment["spec"]["replicas"] == 1, stage


def test_only_the_feature_engine_scales_out(render: Render, to_objects: Any) -> None:
    objects = to_objects(render({"stages": {"feature-engine": {"replicas": 3}}}))
    assert _deployment(objects, f"{RELEASE}-feature-engine")["spec"]["replicas"] == 3
    for stage in ("market-feed", "risk-manager", "trading-engine", "portfolio-manager"):
        with pytest.raises(helm.HelmError, match="runs as one replica"):
            render({"stages": {stage: {"replicas": 2}}})


def test_stage_commands(objects: Objects) -> None:
    for stage in STAGES:
        [container] = _deployment(objects, f"{RELEASE}-{stage}")["spec"]["template"]["spec"][
            "containers"]
        assert container["args"][:2] == ["worker", stage]


def test_image_digest_wins_over_tag(rendered_sets: dict[str, Objects]) -> None:
    objects = rendered_sets["production-extras"]
    [api] = _deployment(objects, f"{RELEASE}-api")["spec"]["template"]["spec"]["containers"]
    assert api["image"] == "registry.example.org/alphaspt-worker@sha256:" + "a" * 64
    [op] = _deployment(objects, f"{RELEASE}-operator")["spec"]["template"]["spec"]["containers"]
    assert op["image"] == "ghcr.io/alphaspt/alphaspt-operator:0.1.0"


def test_development_live_update_is_off_unless_asked(rendered_sets: dict[str, Objects],
                                                     pod_specs_of: Any) -> None:
    for name, spec in pod_specs_of(rendered_sets["default"]):
        assert "initContainers" not in spec, name
        assert all("command" not in c for c in spec["containers"]), name
    dev = pod_specs_of(rendered_sets["kind-dev"])
    for name, spec in dev:
        [init] = spec["initContainers"]
        assert init["name"] == "dev-source", name
        [container] = spec["containers"]
        assert container["command"][:2] == ["python", "/opt/alphaspt/dev-tools/dev-supervisor.py"]
        assert {"name": "PYTHONPATH", "value": "/opt/alphaspt/dev"} in container["env"]
    [config_map] = _by_kind(rendered_sets["kind-dev"], "ConfigMap")
    source = (CHART_DIR / "files" / "dev-supervisor.py").read_text()
    assert config_map["data"]["dev-supervisor.py"] == source.rstrip("\n")


# -- RBAC ---------------------------------------------------------------------------------------

def _rules(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [rule for role in _by_kind(objects, kind) for rule in role["rules"]]


def test_rbac_has_no_wildcards_and_reads_no_secret(objects: Objects) -> None:
    """Secrets: ``get`` only (whether a brokerSecretRef exists, asked as metadata); never
    list or watch, which would hand the operator every Secret of the namespace."""
    rules = _rules(objects, "Role")
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
            assert not any("*" in item for item in rule[field]), rule
        if "secrets" in rule["resources"]:
            assert rule["resources"] == ["secrets"] and rule["verbs"] == ["get"], rule
        assert "resourceNames" not in rule or rule["resourceNames"], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_no_cluster_wide_rbac(objects: Objects) -> None:
    assert not _by_kind(objects, "ClusterRole")
    assert not _by_kind(objects, "ClusterRoleBinding")


def test_operator_role_grants_exactly_what_it_reconciles(objects: Objects) -> None:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in _rules(objects, "Role"):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    # The operator's integration tests run it with exactly these rules (OPERATOR_RULES),
    # plus finalizers/update for blockOwnerDeletion under OwnerReferencesPermissionEnforcement.
    watch_patch = {"get", "list", "watch", "patch"}
    assert grants == {
        ("alphaspt.io", "tradingstrategies"): watch_patch,
        ("alphaspt.io", "riskprofiles"): watch_patch,
        ("alphaspt.io", "tradingstrategies/status"): {"get", "patch"},
        ("alphaspt.io", "riskprofiles/status"): {"get", "patch"},
        ("alphaspt.io", "tradingstrategies/finalizers"): {"update"},
        ("alphaspt.io", "riskprofiles/finalizers"): {"update"},
        ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
        ("", "events"): {"create", "patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
        ("", "secrets"): {"get"},
    }


def test_bindings_bind_only_the_operator_service_account(objects: Objects) -> None:
    for binding in _by_kind(objects, "RoleBinding") + _by_kind(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-operator",
                                        "namespace": NAMESPACE}]
        role_kind = "Role" if binding["kind"] == "RoleBinding" else "ClusterRole"
        assert binding["roleRef"]["kind"] == role_kind
        assert binding["roleRef"]["name"] in {r["metadata"]["name"]
                                              for r in _by_kind(objects, role_kind)}


# -- network policy ----------------------------------------------------------------------------

def test_network_policies_cover_every_pod(rendered_sets: dict[str, Objects],
                                          pod_specs_of: Any) -> None:
    objects = rendered_sets["production-extras"]
    policies = _by_kind(objects, "NetworkPolicy")
    deployments = _by_kind(objects, "Deployment")
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selecting = [p for p in policies
                     if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        types = {t for p in selecting for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, deployment["metadata"]["name"]
    runner_labels = {"app.kubernetes.io/name": "alphaspt",
                     "app.kubernetes.io/component": "strategy-runner",
                     "app.kubernetes.io/managed-by": "alphaspt-operator",
                     "app.kubernetes.io/instance": "momentum", "alphaspt.io/strategy": "momentum"}
    runner_policies = [p for p in policies
                       if p["spec"]["podSelector"]["matchLabels"].items() <= runner_labels.items()]
    assert len(runner_policies) == 1
    assert "ingress" not in runner_policies[0]["spec"]  # no ingress at all
    [api_policy] = [p for p in policies if p["metadata"]["name"] == f"{RELEASE}-api"]
    assert api_policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


def test_egress_allows_dns_and_the_configured_ports(rendered_sets: dict[str, Objects]) -> None:
    objects = rendered_sets["external-redpanda-sasl"]
    [policy] = [p for p in _by_kind(objects, "NetworkPolicy")
                if p["metadata"]["name"] == RELEASE]
    ports = {(p["port"], p["protocol"]) for rule in policy["spec"]["egress"]
             for p in rule["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (5432, "TCP"), (6379, "TCP"),
                     (9094, "TCP")}


# -- values schema -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": 2}, "replicaCount"),
        ({"api": {"replica": 2}}, "replica"),
        ({"api": {"replicas": "two"}}, "replicas"),
        ({"operator": {"replicas": 2}}, "replicas"),
        ({"stages": {"strategy-runner": {"enabled": True}}}, "strategy-runner"),
        ({"stages": {"trading-engine": {"enabled": True, "strategy": "BlueGreen"}}}, "strategy"),
        ({"podSecurityContext": {"runAsUser": 0, "runAsGroup": 0, "fsGroup": 0}}, "runAsUser"),
        ({"connections": {"existingSecret": ""}}, "existingSecret"),
        ({"connections": {"postgresUrl": "postgresql://u:p@h/db"}}, "postgresUrl"),
        ({"api": {"resources": {"limits": None}}}, "limits"),  # null deletes a default
        ({"stageDefaults": {"livenessProbe": None}}, "livenessProbe"),
        ({"logLevel": "verbose"}, "logLevel"),
        ({"image": {"worker": {"digest": "latest"}}}, "digest"),
        ({"redis": {"enabled": "yes"}}, "enabled"),
    ],
)
def test_values_outside_the_schema_are_refused(render: Render, values: dict[str, Any],
                                               complaint: str) -> None:
    with pytest.raises(helm.HelmError, match=complaint):
        render(values)


def _objects_in(schema: Mapping[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if schema.get("type") == "object" and "properties" in schema:
        found.append((path, dict(schema)))
    for key, sub in schema.get("properties", {}).items():
        found.extend(_objects_in(sub, f"{path}.{key}"))
    for name, sub in schema.get("definitions", {}).items():
        found.extend(_objects_in(sub, f"#{name}"))
    return found


def test_schema_closes_every_object_but_the_dependencies() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    open_objects = [path for path, obj in _objects_in(schema)
                    if obj.get("additionalProperties", True) is not False]
    # Sub-chart values belong to those charts; EnvVar.valueFrom is Kubernetes' own type.
    assert sorted(open_objects) == [".postgresql", ".redis", ".redpanda"]


def test_schema_covers_every_default_value() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for key in values:
        assert key in schema["properties"], key
    assert set(schema["required"]) <= set(values)


# -- dependencies ------------------------------------------------------------------------------

def test_optional_dependencies_are_declared_and_off() -> None:
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    deps = {d["name"]: d for d in meta["dependencies"]}
    assert set(deps) == {"redpanda", "postgresql", "redis"}
    for name, dep in deps.items():
        assert dep["condition"] == f"{name}.enabled"
        assert values[name]["enabled"] is False
        assert dep["repository"].startswith(("https://", "oci://"))
        assert dep["version"]
    # The dependencies read their passwords from the connection Secret.
    assert values["postgresql"]["auth"]["existingSecret"] == values["connections"][
        "existingSecret"]
    assert values["redis"]["auth"]["existingSecret"] == values["connections"]["existingSecret"]


def test_dependency_archives_are_not_committed() -> None:
    assert (CHART_DIR / ".gitignore").read_text().splitlines()[-1] == "charts/"


# -- NOTES -------------------------------------------------------------------------------------

def test_notes_say_what_to_apply_next(render: Render) -> None:
    notes = render()[f"{RELEASE}/templates/NOTES.txt"]
    assert "kubectl -n trading create secret generic alphaspt-connections" in notes
    for key in ("ALPHASPT_KAFKA__BOOTSTRAP_SERVERS", "ALPHASPT_POSTGRES__URL",
                "ALPHASPT_REDIS__URL", "ALPHASPT_API__TOKEN"):
        assert f"--from-literal={key}=" in notes
    assert "kubectl -n trading apply -f examples/" in notes
    assert "get riskprofiles,tradingstrategies" in notes
    assert "port-forward svc/alphaspt-api 8000:8000" in notes
    assert "helm show crds" in notes


def test_notes_point_at_the_ingress_when_there_is_one(render: Render) -> None:
    notes = render({"ingress": {"enabled": True, "host": "trade.example.org",
                                "tls": {"enabled": True, "secretName": "tls"}}})[
        f"{RELEASE}/templates/NOTES.txt"]
    assert "https://trade.example.org/" in notes
    assert "port-forward" not in notes
