"""Fixtures for the deployment tests: the chart rendered offline by Helm's own Go engine.

Helm runs in-process through ``helm-python-sdk`` (libhelm_c: Helm v4's SDK, no binary).
Rendering, linting and schema validation need no cluster and no network.

The chart declares its optional dependencies (Redpanda, PostgreSQL, Redis) in Chart.yaml;
Helm refuses to install or lint a chart whose declared dependencies are missing from charts/,
even disabled ones, and fetching them needs the chart repositories. The tests therefore work
on a copy of the chart whose charts/ holds empty stand-ins with the declared names and
versions: they satisfy Helm's dependency check and render nothing, so what is tested is
exactly this chart's templates (the dependencies' own manifests are their charts' business).
"""

from __future__ import annotations

import copy
import importlib
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

# No type information ships with it: typed as Any.
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "helm" / "alphaspt"
CRDS_DIR = REPO / "crds"
RELEASE = "alphaspt"
NAMESPACE = "trading"

# The newest Kubernetes release whose schemas kubernetes-validate ships.
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()

# Stand-in versions for the optional dependencies; each satisfies its Chart.yaml constraint.
STAND_IN_VERSIONS = {"redpanda": "5.9.0", "postgresql": "16.0.0", "redis": "20.0.0"}

_SASL_SECRET = "redpanda-sasl-connections"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    # A Redpanda cluster outside the release, with SASL over TLS: the SASL settings and the
    # password are keys of a separate connection Secret; the operator's topics replicate 3x.
    "external-redpanda-sasl": {
        "connections": {
            "existingSecret": _SASL_SECRET,
            "kafka": {"partitions": 6, "replicationFactor": 3},
        },
        "networkPolicy": {"enabled": True, "egress": {"tcpPorts": [443, 5432, 6379, 9094]}},
        "api": {"tokenSecret": {"name": "alphaspt-api-token", "key": "token"}},
    },
    # The optional in-cluster dependencies switched on.
    "dependencies-enabled": {
        "redpanda": {"enabled": True},
        "postgresql": {"enabled": True},
        "redis": {"enabled": True},
        "connections": {"kafka": {"partitions": 1, "replicationFactor": 1}},
    },
    # Everything a production install may switch on.
    "production-extras": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "alphaspt.example.org",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "tls": {"enabled": True, "secretName": "alphaspt-tls"},
        },
        "networkPolicy": {
            "enabled": True,
            "api": {"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "ingress-nginx"}}}]},
            "metrics": {"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "monitoring"}}}]},
        },
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "image": {
            "worker": {"repository": "registry.example.org/alphaspt-worker", "tag": "",
                       "digest": "sha256:" + "a" * 64, "pullPolicy": "IfNotPresent"},
        },
        "imagePullSecrets": ["registry-example-org"],
        "connections": {"kite": {"existingSecret": "kite-credentials"}},
        "api": {"replicas": 2, "corsOrigins": ["https://dashboard.example.org"]},
        "stages": {"feature-engine": {"enabled": True, "replicas": 2}},
        "tolerations": [{"key": "trading", "operator": "Exists", "effect": "NoSchedule"}],
    },
    # The Tilt development values (live update on).
    "kind-dev": yaml.safe_load((REPO / "kind" / "values-dev.yaml").read_text()),
}


def _write_stand_in(charts: Path, name: str, version: str) -> None:
    chart = charts / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version,
                        "description": f"Test stand-in for the {name} chart"})
    )
    (chart / "values.yaml").write_text("{}\n")


@pytest.fixture(scope="session")
def chart_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of helm/alphaspt (CRD symlink resolved) with stand-ins in charts/."""
    target = tmp_path_factory.mktemp("chart") / "alphaspt"
    shutil.copytree(CHART_DIR, target, symlinks=False,
                    ignore=shutil.ignore_patterns("charts", "__pycache__"))
    for name, version in STAND_IN_VERSIONS.items():
        _write_stand_in(target / "charts", name, version)
    return target


@pytest.fixture(scope="session")
def chart(chart_path: Path) -> Iterator[helm.Chart]:
    helm.disable_logging()
    with helm.Chart.load(chart_path) as loaded:
        yield loaded


Render = Callable[..., dict[str, str]]


def _render(chart: helm.Chart, values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would print it."""
    return chart.render(copy.deepcopy(dict(values or {})), name=RELEASE, namespace=NAMESPACE,
                        is_install=True)


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Render:
    """render(values) -> {template path: text}; raises helm's error for refused values."""

    def do_render(values: Mapping[str, Any] | None = None) -> dict[str, str]:
        return _render(chart, values)

    return do_render


@pytest.fixture(scope="session")
def to_objects() -> Callable[[Mapping[str, str]], list[dict[str, Any]]]:
    return manifests


def manifests(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt and empty documents left out)."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


@pytest.fixture(scope="session")
def rendered_sets(chart: helm.Chart) -> dict[str, list[dict[str, Any]]]:
    """Each value set of VALUE_SETS rendered once per session."""
    return {name: manifests(_render(chart, values)) for name, values in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def objects(value_set: str, rendered_sets: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered_sets[value_set]


@pytest.fixture
def workloads(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every workload of the value set's render."""
    return pod_specs(objects)


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every workload in a render."""
    found = []
    for obj in objects:
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            found.append((obj["metadata"]["name"], obj["spec"]["template"]["spec"]))
        elif obj["kind"] == "CronJob":
            found.append((obj["metadata"]["name"],
                          obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif obj["kind"] == "Pod":
            found.append((obj["metadata"]["name"], obj["spec"]))
    return found


@pytest.fixture(scope="session")
def pod_specs_of() -> Callable[[list[dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
    return pod_specs


@pytest.fixture(scope="session")
def value_sets() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(VALUE_SETS)
