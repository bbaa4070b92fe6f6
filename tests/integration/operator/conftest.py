"""The operator against a real kube-apiserver, with real PostgreSQL, Kafka and Redis.

Session-scoped: one etcd + kube-apiserver (tests/support/kube_apiserver.py), the CRDs, one
fresh namespace (nothing deletes namespaces here), one database, and the operator itself
running in-process in a thread (``alphaspt.operator.main.serve``) with short intervals.

No kubelet or controller manager runs: a Deployment's status stays empty until a test
plays the Deployment controller (:meth:`Kube.simulate_rollout`), and nothing garbage-
collects owned objects.

Without the binaries these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alphaspt.core.config import (
    KafkaConfig,
    OperatorConfig,
    PostgresConfig,
    RedisConfig,
    Settings,
)
from alphaspt.core.specs import API_VERSION, GROUP, VERSION
from alphaspt.local.process import free_port
from alphaspt.local.servers import EmbeddedPostgres
from tests.support.kube_apiserver import BUILD_SCRIPT, KubeApiServer, binaries_available

CRD_DIR = Path(__file__).resolve().parents[3] / "crds"
OPERATOR_USER = "alphaspt-operator"
OPERATOR_RULES: list[dict[str, Any]] = [
    # What alphaspt.operator.handlers documents (and the Helm chart grants), nothing more.
    {"apiGroups": ["alphaspt.io"], "resources": ["tradingstrategies", "riskprofiles"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["alphaspt.io"],
     "resources": ["tradingstrategies/status", "riskprofiles/status"],
     "verbs": ["get", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    # brokerSecretRef: whether a Live strategy's Secret exists (read as metadata only).
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class Kube:
    """Plain JSON calls to the test API server as the admin user."""

    def __init__(self, server: KubeApiServer) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url,
            verify=ssl.create_default_context(cafile=str(server.ca_path)),
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=15.0,
            trust_env=False,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> httpx.Response:
        return self.http.request(method, path, json=body,
                                 headers={"Content-Type": content_type})

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.request("GET", path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", path, body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def patch(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def custom(ns: str, plural: str, name: str = "") -> str:
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{plural}"
        return f"{base}/{name}" if name else base

    @staticmethod
    def ts(ns: str, name: str = "") -> str:
        return Kube.custom(ns, "tradingstrategies", name)

    @staticmethod
    def rp(ns: str, name: str = "") -> str:
        return Kube.custom(ns, "riskprofiles", name)

    @staticmethod
    def deployment(ns: str, name: str = "") -> str:
        base = f"/apis/apps/v1/namespaces/{ns}/deployments"
        return f"{base}/{name}" if name else base

    # -- helpers -----------------------------------------------------------------------------

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server (skips the rest of the test without kubectl)."""
        if shutil.which("kubectl") is None:
            pytest.skip("kubectl is not on PATH (only the kubectl checks need it)")
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.server.kubeconfig_path), *args],
            capture_output=True, text=True, check=False, timeout=60)

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        found = self.get(f"/api/v1/namespaces/{ns}/events"
                         f"?fieldSelector=involvedObject.name%3D{name}")
        return list((found or {}).get("items", []))

    def simulate_rollout(self, ns: str, name: str, *, available: bool = True) -> None:
        """Play the Deployment controller: report the current spec as rolled out."""
        dep = self.get(self.deployment(ns, name))
        assert dep is not None, f"no Deployment {name}"
        replicas = int(dep["spec"].get("replicas", 1))
        up = replicas if available else 0
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": up,
            "availableReplicas": up,
            "unavailableReplicas": replicas - up,
            "conditions": [{
                "type": "Available",
                "status": "True" if up >= replicas else "False",
                "reason": "MinimumReplicasAvailable" if up >= replicas
                else "MinimumReplicasUnavailable",
                "message": "simulated by the test",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }],
        }
        response = self.patch(self.deployment(ns, name) + "/status", {"status": status})
        assert response.status_code == 200, response.text


def strategy_manifest(name: str, profile: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TradingStrategy",
        "metadata": {"name": name},
        "spec": {"strategy": "momentum", "instruments": ["INFY", "TCS"],
                 "riskProfileRef": profile, "params": {"quantity": 5, "threshold": 0.001}, **spec},
    }


def profile_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "RiskProfile", "metadata": {"name": name},
            "spec": {"maxOrderQuantity": 100, **spec}}


@pytest.fixture
def profile(kube: Kube, operator: RunningOperator, name: str) -> str:
    """A RiskProfile (the operator reconciles it)."""
    rp = f"rp-{name}"
    kube.create(kube.rp(operator.namespace), profile_manifest(rp))
    return rp


def strategy_of(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    return kube.get(kube.ts(ns, name))


def worker_of(kube: Kube, ns: str, strategy: str) -> dict[str, Any] | None:
    """The strategy-runner Deployment of ``strategy``."""
    return kube.get(kube.deployment(ns, f"strategy-{strategy}"))


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


async def eventually(probe: Callable[[], Any], *, within: float = 15.0,
                     interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``probe`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        result = probe()
        last = await result if inspect.isawaitable(result) else result
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s; last: {last!r}")
        await asyncio.sleep(interval)


class TcpProxy:
    """127.0.0.1:PORT forwarded to an upstream server. ``cut()`` simulates the server going
    down (open connections reset, new ones refused); ``restore()`` brings it back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="tcp-proxy").start()

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def kube_server() -> Iterator[KubeApiServer]:
    if not binaries_available():
        reason = f"kube-apiserver/etcd not built: run {BUILD_SCRIPT}"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    with KubeApiServer(users={OPERATOR_USER: ()}) as server:
        yield server


@pytest.fixture(scope="session")
def kube(kube_server: KubeApiServer) -> Iterator[Kube]:
    client = Kube(kube_server)
    yield client
    client.close()


@pytest.fixture(scope="session")
def crds(kube: Kube) -> list[dict[str, Any]]:
    """Install crds/*.yaml and wait until the API server serves them."""
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body)
        names.append(body["metadata"]["name"])
    deadline = time.monotonic() + 30
    while True:
        installed = [kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}")
                     for n in names]
        if all(condition(c, "Established").get("status") == "True" for c in installed):
            return [c for c in installed if c is not None]
        assert time.monotonic() < deadline, "CRDs not established"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def namespace(kube: Kube, crds: list[dict[str, Any]]) -> str:
    ns = f"alphaspt-{uuid.uuid4().hex[:6]}"
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": ns}})
    return ns


@pytest.fixture(scope="session")
def operator_kubeconfig(kube: Kube, kube_server: KubeApiServer, namespace: str,
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator runs as an ordinary user with only the documented namespaced Role."""
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    kube.create(f"{rbac}/roles", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                  "metadata": {"name": OPERATOR_USER},
                                  "rules": OPERATOR_RULES})
    kube.create(f"{rbac}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": OPERATOR_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": OPERATOR_USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": OPERATOR_USER}]})
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    return kube_server.write_kubeconfig(path, user=OPERATOR_USER)


@pytest.fixture(scope="session")
def postgres_proxy(postgres_server: EmbeddedPostgres) -> Iterator[TcpProxy]:
    proxy = TcpProxy(postgres_server.port)
    yield proxy
    proxy.cut()


@pytest.fixture(scope="session")
def operator_db_url(postgres_url: str, postgres_proxy: TcpProxy) -> str:
    """A database of its own, so no other test sees (or disturbs) the operator's rows,
    reached through a proxy that a test can cut to simulate an outage."""
    db = f"op_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = create_async_engine(postgres_url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{db}"'))
        await admin.dispose()

    asyncio.run(create())
    direct = f"127.0.0.1:{postgres_proxy.upstream_port}"
    assert direct in postgres_url
    return postgres_url.replace(direct, f"127.0.0.1:{postgres_proxy.port}").rsplit(
        "/", 1)[0] + f"/{db}"


@pytest.fixture(scope="session")
def operator_settings(operator_kubeconfig: Path, namespace: str, operator_db_url: str,
                      redis_url: str, kafka: KafkaConfig) -> Settings:
    return Settings(
        namespace=namespace,
        postgres=PostgresConfig(url=operator_db_url),
        redis=RedisConfig(url=redis_url),
        kafka=kafka,
        operator=OperatorConfig(
            worker_image="registry.example/alphaspt-worker:test",
            kubeconfig=operator_kubeconfig,
            # A resync far beyond every test's wait: whatever a test sees happen, happened
            # because of a watch event, a probe or a retry, not because of the resync.
            resync_interval=600.0,
            sweep_interval=3.0,
            runtime_interval=1.0,
            runtime_write_interval=2.0,
            probe_interval=1.0,
            retry_delay=1.0,
            deletion_attempts=2,
            health_port=free_port(),
            metrics_port=free_port(),
        ),
    )


class RunningOperator:
    """``serve(settings)`` on its own event loop in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="alphaspt-operator",
                                       daemon=True)

    def _main(self) -> None:
        from alphaspt.operator.main import serve

        try:
            asyncio.run(serve(self.settings, stop_flag=self.stop_flag,
                              ready_flag=self.ready_flag))
        except BaseException as exc:
            self.error = exc

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.ready_flag.wait(0.1):
            if not self.thread.is_alive():
                raise RuntimeError(f"the operator exited: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the operator did not become ready")

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_flag.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the operator did not stop"
        gc.collect()  # release its Kafka clients now, not after the broker has stopped


@pytest.fixture(scope="session")
def operator(operator_settings: Settings) -> Iterator[RunningOperator]:
    running = RunningOperator(operator_settings)
    running.start()
    yield running
    running.stop()
