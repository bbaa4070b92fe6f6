"""The rendered chart, applied to a real kube-apiserver with server-side dry-run.

The API server (tests/support/kube_apiserver.py; binaries from
scripts/build-kube-apiserver.sh) runs every admission step a cluster would, including Pod
Security admission: the namespace enforces and warns on the ``restricted`` standard, and a
workload that would violate it comes back with a warning, which fails the test. The CRDs
are created for real first (a dry-run CRD defines no type), then every manifest is sent as a
server-side apply with ``dryRun=All``: validated, defaulted and admitted, never stored.

With CI=true the binaries must be there (the test fails otherwise); locally it skips.
"""

from __future__ import annotations

import copy
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import yaml

from tests.support.kube_apiserver import BUILD_SCRIPT, KubeApiServer, binaries_available

pytestmark = pytest.mark.kube

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "trading"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
# Kinds whose CRDs belong to other projects (Prometheus Operator): not in a bare API server.
FOREIGN = {("monitoring.coreos.com/v1", "ServiceMonitor")}
FIELD_MANAGER = "alphaspt-chart-test"


class Api:
    """JSON calls as the admin user, with the API's discovery for resource paths."""

    def __init__(self, server: KubeApiServer) -> None:
        self.http = httpx.Client(
            base_url=server.url,
            verify=ssl.create_default_context(cafile=str(server.ca_path)),
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30.0,
            trust_env=False,
        )
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}

    def close(self) -> None:
        self.http.close()

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the server's discovery."""
        key = (api_version, kind)
        if key not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            response = self.http.get(base)
            response.raise_for_status()
            for item in response.json()["resources"]:
                if "/" not in item["name"]:
                    self._resources[(api_version, item["kind"])] = (item["name"],
                                                                    item["namespaced"])
        return self._resources[key]

    def path(self, obj: dict[str, Any]) -> str:
        api_version, kind = obj["apiVersion"], obj["kind"]
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{obj['metadata']['namespace']}"
        return f"{base}/{plural}/{obj['metadata']['name']}"

    def apply(self, obj: dict[str, Any], *, dry_run: bool) -> httpx.Response:
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return self.http.patch(self.path(obj), params=params, json=obj,
                               headers={"Content-Type": "application/apply-patch+yaml"})


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    if not binaries_available():
        reason = f"kube-apiserver/etcd not built: run {BUILD_SCRIPT}"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    with KubeApiServer() as server:
        client = Api(server)
        try:
            _prepare(client)
            yield client
        finally:
            client.close()


def _prepare(api: Api) -> None:
    """The release namespace (restricted Pod Security) and the CRDs, created for real."""
    namespace = {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        }},
    }
    response = api.apply(namespace, dry_run=False)
    assert response.status_code in (200, 201), response.text
    helm.disable_logging()
    with helm.Chart.load(REPO / "helm" / "alphaspt") as chart:
        crds = [doc for c in chart.crds for doc in yaml.safe_load_all(c["data"]) if doc]
    for crd in crds:
        response = api.apply(crd, dry_run=False)
        assert response.status_code in (200, 201), response.text
    deadline = time.monotonic() + 30
    for crd in crds:
        while True:
            got = api.http.get(api.path(crd)).json()
            status = got.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            assert time.monotonic() < deadline, f"{crd['metadata']['name']} not established"
            time.sleep(0.1)


def _warnings(response: httpx.Response) -> list[str]:
    return response.headers.get_list("warning")


def _dry_run_all(api: Api, objects: list[dict[str, Any]]) -> list[str]:
    problems = []
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in FOREIGN:
            continue
        response = api.apply(copy.deepcopy(obj), dry_run=True)
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if response.status_code not in (200, 201):
            problems.append(f"{where}: HTTP {response.status_code}: {response.text[:500]}")
        problems.extend(f"{where}: warning: {w}" for w in _warnings(response))
    return problems


def test_every_value_set_is_accepted(api: Api, rendered_sets: dict[str, list[dict[str, Any]]]
                                     ) -> None:
    checked = 0
    for name, objects in sorted(rendered_sets.items()):
        problems = _dry_run_all(api, objects)
        assert not problems, f"value set {name}:\n" + "\n".join(problems)
        checked += len(objects)
    assert checked > 50


def test_nothing_was_stored(api: Api, rendered_sets: dict[str, list[dict[str, Any]]]) -> None:
    """dryRun=All stores nothing: the Deployments are not there afterwards."""
    _dry_run_all(api, rendered_sets["default"])
    deployments = api.http.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments").json()
    assert deployments["items"] == []


def test_a_privileged_pod_would_be_refused(api: Api,
                                           rendered_sets: dict[str, list[dict[str, Any]]]
                                           ) -> None:
    """The check above can fail: the same Deployment made root gets Pod Security warnings."""
    deployment = copy.deepcopy(next(o for o in rendered_sets["default"]
                                    if o["kind"] == "Deployment"))
    pod = deployment["spec"]["template"]["spec"]
    pod["securityContext"]["runAsNonRoot"] = False
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    response = api.apply(deployment, dry_run=True)
    assert response.status_code in (200, 201)  # Deployments are warned about, pods refused
    assert any("restricted" in w for w in _warnings(response)), _warnings(response)


def test_examples_are_accepted_by_the_crds(api: Api) -> None:
    objects = [doc for path in sorted((REPO / "examples").glob("*.yaml"))
               for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert objects, "examples/*.yaml: nothing to apply"
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("namespace", NAMESPACE)
    problems = _dry_run_all(api, objects)
    assert not problems, "\n".join(problems)
