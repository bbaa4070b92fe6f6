"""kind/: the local cluster, the dev services and the dev connection Secret script."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import yaml

# No type information ships with it: typed as Any.
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")

REPO = Path(__file__).resolve().parents[3]
KIND = REPO / "kind"


def _services() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KIND / "dev-services.yaml").read_text()) if d]


def test_cluster_config() -> None:
    config = yaml.safe_load((KIND / "cluster.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["name"] == "alphaspt"  # kubectl context kind-alphaspt, as the Tiltfile allows
    assert "allow_k8s_contexts('kind-alphaspt')" in (REPO / "Tiltfile").read_text()
    for node in config["nodes"]:
        assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+(@sha256:[0-9a-f]{64})?", node["image"])


def test_dev_services_validate_and_meet_the_restricted_standard() -> None:
    version = kubernetes_validate.utils.latest_version()
    services = _services()
    assert {(d["kind"], d["metadata"]["name"]) for d in services} == {
        (kind, name) for kind in ("Deployment", "Service")
        for name in ("redpanda", "postgres", "redis")}
    for doc in services:
        kubernetes_validate.validate(doc, version, strict=True)
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            # Pinned to a release (postgres versions have two parts), never a moving tag.
            assert re.search(r":v?\d+\.\d+(\.\d+)?(-[\w.]+)?$", container["image"])
            assert container["readinessProbe"] and container["livenessProbe"]
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
            for env in container.get("env", []):
                if "PASSWORD" in env["name"]:
                    assert env["valueFrom"]["secretKeyRef"]["name"] == "alphaspt-connections"


def test_dev_connection_script_writes_every_key_the_pods_read() -> None:
    script = (KIND / "dev-connections.sh").read_text()
    keys = set(re.findall(r"^([A-Za-z_][-\w]*)=", script, re.MULTILINE))
    assert {"ALPHASPT_KAFKA__BOOTSTRAP_SERVERS", "ALPHASPT_POSTGRES__URL", "ALPHASPT_REDIS__URL",
            "ALPHASPT_API__TOKEN", "postgres-password", "redis-password"} <= keys
    referenced = {e["valueFrom"]["secretKeyRef"]["key"] for d in _services()
                  if d["kind"] == "Deployment"
                  for c in d["spec"]["template"]["spec"]["containers"]
                  for e in c.get("env", []) if "valueFrom" in e}
    assert referenced <= keys
    # Random, never committed: generated when the Secret is created.
    assert "secrets.token_hex" in script
    assert "pod-security.kubernetes.io/enforce: restricted" in script
