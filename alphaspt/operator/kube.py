"""The few Kubernetes API calls the operator makes itself (kopf does the watching).

A small asyncio client on aiohttp (kopf's own HTTP library): plain JSON dicts in and out,
no generated models, nothing blocking the event loop. Credentials are loaded once with the
``kubernetes`` package's loaders (kubeconfig or in-cluster service account, token refresh
included) and shared with kopf through :func:`connection_info`.

Errors mean what the caller should do: ``None`` for a 404 (gone is a state, not an error),
:class:`Conflict` for a 409, :class:`~alphaspt.exceptions.InvalidConfiguration` for a
request the API server refuses as invalid (400/422), and
:class:`~alphaspt.exceptions.InfrastructureUnavailable` for everything that may pass.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from alphaspt.core.specs import GROUP, VERSION
from alphaspt.exceptions import InfrastructureUnavailable, InvalidConfiguration, TemporaryFailure

log = logging.getLogger(__name__)

TRADING_STRATEGIES: Final = "tradingstrategies"
RISK_PROFILES: Final = "riskprofiles"
MERGE_PATCH: Final = "application/merge-patch+json"
PARTIAL_METADATA: Final = ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
                           "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1")


class Conflict(TemporaryFailure):
    """409: the object exists already, or changed since it was read."""

    retry_after: float | None = 1.0


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_path: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None
    insecure: bool


def load_configuration(kubeconfig: Path | None) -> Any:
    """A ``kubernetes.client.Configuration``: ``kubeconfig`` if given, else the in-cluster
    service account, else the default kubeconfig (``$KUBECONFIG``, ``~/.kube/config``)."""
    cfg = k8s_client.Configuration()
    if kubeconfig is not None:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=cfg)
        return cfg
    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def credentials_of(cfg: Any) -> Credentials:
    """Current credentials (calls the token refresh hook of an in-cluster configuration)."""
    auth = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization")
    token = None
    if auth:
        token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
    return Credentials(
        server=str(cfg.host).rstrip("/"),
        ca_path=cfg.ssl_ca_cert,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        insecure=not cfg.verify_ssl,
    )


def _ssl_context(creds: Credentials) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=creds.ca_path)
    if creds.certificate_path:
        context.load_cert_chain(creds.certificate_path, creds.private_key_path)
    if creds.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class KubeClient:
    """Async JSON calls to the API server. Create inside the event loop; ``close`` at exit."""

    def __init__(self, configuration: Any, *, timeout: float = 30.0, connections: int = 32
                 ) -> None:
        self._cfg = configuration
        creds = credentials_of(configuration)
        self.server = creds.server
        self._ssl = _ssl_context(creds) if creds.server.startswith("https") else None
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=connections, ssl=self._ssl or False),
            trust_env=False,
        )

    async def close(self) -> None:
        await self._session.close()

    async def served_resources(self, group_version: str) -> set[str]:
        """Resource names the API server serves in ``group/version`` (discovery)."""
        found = await self._request("GET", f"/apis/{group_version}")
        return {str(r["name"]) for r in (found or {}).get("resources", [])}

    # -- TradingStrategy / RiskProfile -----------------------------------------------------

    @staticmethod
    def _custom(namespace: str, plural: str, name: str | None = None) -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{plural}"
        return f"{path}/{quote(name)}" if name else path

    async def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        return await self._request("GET", self._custom(namespace, plural, name))

    async def list_custom(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        found = await self._request("GET", self._custom(namespace, plural))
        return list((found or {}).get("items", []))

    async def patch_custom_status(
        self, namespace: str, plural: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch ``status`` (the status subresource); ``None`` if the object is gone."""
        return await self._request(
            "PATCH", self._custom(namespace, plural, name) + "/status",
            body={"status": status}, content_type=MERGE_PATCH)

    # -- Deployments -----------------------------------------------------------------------

    @staticmethod
    def _deployments(namespace: str, name: str | None = None) -> str:
        path = f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments"
        return f"{path}/{quote(name)}" if name else path

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._request("GET", self._deployments(namespace, name))

    async def create_deployment(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created = await self._request("POST", self._deployments(namespace), body=body)
        if created is None:  # 404: the namespace is gone
            raise InfrastructureUnavailable(f"namespace {namespace} not found")
        return created

    async def patch_deployment(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        return await self._request("PATCH", self._deployments(namespace, name), body=patch,
                                   content_type=MERGE_PATCH)

    async def delete_deployment(self, namespace: str, name: str) -> bool:
        """Delete (pods in the background); False if it did not exist."""
        gone = await self._request("DELETE", self._deployments(namespace, name),
                                   body={"propagationPolicy": "Background"})
        return gone is not None

    # -- Secrets (metadata only) -----------------------------------------------------------

    async def get_secret_metadata(self, namespace: str, name: str
                                  ) -> dict[str, Any] | None:
        """A Secret as ``PartialObjectMetadata``: whether it exists and its resourceVersion,
        without its data ever reaching the operator (RBAC: ``get`` on secrets)."""
        return await self._request(
            "GET", f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}",
            accept=PARTIAL_METADATA)

    # -- transport -------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None,
        content_type: str = "application/json", accept: str = "application/json",
    ) -> dict[str, Any] | None:
        creds = credentials_of(self._cfg)
        headers = {"Accept": accept, "Content-Type": content_type}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        data = None if body is None else json.dumps(body)
        if self._session.closed:  # the operator is shutting down
            raise InfrastructureUnavailable(f"Kubernetes API {method} {path}: client closed")
        try:
            async with self._session.request(method, self.server + path, data=data,
                                             headers=headers) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise InfrastructureUnavailable(
                f"Kubernetes API {method} {path}: {type(exc).__name__}: {exc}") from exc
        if status < 300:
            return dict(json.loads(text)) if text else {}
        if status == 404:
            return None
        message = _status_message(text)
        where = f"{method} {path}: HTTP {status}: {message}"
        if status == 409:
            raise Conflict(where)
        if status in (400, 422):
            raise InvalidConfiguration(where)
        raise InfrastructureUnavailable(where)


def _status_message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))[:2000]
    except ValueError:
        return text[:2000]
