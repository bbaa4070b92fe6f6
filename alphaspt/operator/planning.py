"""The one reconcile core: custom resources in, desired state out. Pure: no I/O at all.

Both runtimes call this module and apply what it returns:

- the Kubernetes operator (:mod:`alphaspt.operator.handlers`) upserts the rows, ensures the
  topics with the Kafka admin API and renders each :class:`WorkerSpec` into a Deployment
  with :func:`plan_deployment`;
- ``alphaspt up`` (the local runtime) upserts the same rows, ensures the same topics and
  runs each worker's ``argv`` as a local process with ``env`` plus its own values for the
  names in ``secret_env`` / ``optional_secret_env``.

API (everything else here is a detail)::

    strategies, profiles = resources_from_manifests(manifests, namespace="default")
    desired = plan(strategies, profiles, PlanConfig(partitions=3))
    desired.strategies      # StrategyRow:  ConfigRepository.upsert_strategy(**row.upsert_args())
    desired.risk_profiles   # RiskProfileRow: ConfigRepository.upsert_risk_profile(...)
    desired.topics          # TopicPlan(name, partitions, config): ensure_topics(...)
    desired.workers         # WorkerSpec(name, stage, argv, env, secret_env, replicas, ...)

    plan_strategy(resource, config)          # one strategy: its row, own topics, worker
    plan_deployment(worker, owner, image, namespace=..., connection_secret=...)  # a dict

Topics: the shared pipeline topics of :class:`alphaspt.core.events.Topics` and their
``.dlq`` twins, plus one compacted ``strategy.<name>.state`` per strategy, where its runner
checkpoints its state. Strategy names are DNS labels, so these names are unambiguous within
one namespace (the operator watches one namespace).

``desiredState``: ``Running`` → 1 replica; ``Paused`` and ``Stopped`` → 0 (the operator also
announces PAUSE/RESUME on ``control.commands``). The pods roll when ``config_hash`` changes:
it covers everything the runner reads at start-up (strategy, params, instruments, mode,
risk profile, image, argv, env, resources) but not ``desiredState``, which only scales.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Generic, TypeVar

from alphaspt.core.events import Topics
from alphaspt.core.specs import (
    API_VERSION,
    DesiredState,
    Manifest,
    Mode,
    RiskProfileSpec,
    TradingStrategySpec,
)
from alphaspt.exceptions import DependencyNotReady, InvalidConfiguration

STAGE: Final = "strategy-runner"
CONTAINER: Final = "strategy-runner"
MANAGED_BY: Final = "alphaspt-operator"
STRATEGY_LABEL: Final = "alphaspt.io/strategy"
CONFIG_HASH_ANNOTATION: Final = "alphaspt.io/config-hash"
TRADING_STRATEGY: Final = "TradingStrategy"
RISK_PROFILE: Final = "RiskProfile"

CONNECTION_ENV: Final = ("ALPHASPT_POSTGRES__URL", "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS")
"""What a strategy runner needs to reach its configuration and the log (required keys)."""
OPTIONAL_CONNECTION_ENV: Final = (
    "ALPHASPT_KAFKA__SECURITY_PROTOCOL",
    "ALPHASPT_KAFKA__SASL_MECHANISM",
    "ALPHASPT_KAFKA__SASL_USERNAME",
    "ALPHASPT_KAFKA__SASL_PASSWORD",
)
"""Used when the connection Secret has them (a SASL-protected cluster)."""

BROKER_SECRET_ENV: Final = (
    ("ALPHASPT_KITE__API_KEY", "api_key", False),
    ("ALPHASPT_KITE__API_SECRET", "api_secret", True),
    ("ALPHASPT_KITE__ACCESS_TOKEN", "access_token", True),
)
"""A Live strategy's own broker Secret (``brokerSecretRef``): variable, key in the Secret,
optional. Only that Secret is referenced by that strategy's worker; ``api_secret`` is only
needed by ``alphaspt kite login`` and ``access_token`` appears after the daily login."""
BROKER_SECRET_VERSION_ANNOTATION: Final = "alphaspt.io/broker-secret-version"  # noqa: S105
"""The pod template carries the broker Secret's resourceVersion: a new access token rolls
the worker (at the next reconcile), since environment variables are read at start-up."""

METRICS_PORT: Final = 9090
"""The workers' /healthz, /readyz and /metrics port in a pod (``ALPHASPT_METRICS__PORT``)."""

RUN_AS: Final = 10001
"""The numeric non-root user of Dockerfile.worker."""

S = TypeVar("S", TradingStrategySpec, RiskProfileSpec)


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource(Generic[S]):
    """A custom resource reduced to what planning needs."""

    name: str
    spec: S
    namespace: str = "default"
    generation: int = 0


StrategyResource = Resource[TradingStrategySpec]
RiskProfileResource = Resource[RiskProfileSpec]


@dataclass(frozen=True)
class PlanConfig:
    namespace: str = "default"
    """Where the shared stages run (their consumer groups and changelogs are per namespace)."""
    partitions: int = 3
    """Partitions of every shared pipeline topic and its dead-letter topic."""
    state_partitions: int = 1
    default_requests: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "100m", "memory": "256Mi"})
    default_limits: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "500m", "memory": "512Mi"})
    """Used for every resource key a strategy's ``spec.resources`` does not set itself."""


def resources_from_manifests(
    manifests: Iterable[Manifest], namespace: str = "default"
) -> tuple[list[StrategyResource], list[RiskProfileResource]]:
    """Parse the AlphasPT manifests of a YAML stream; other kinds are ignored.

    Raises :class:`InvalidConfiguration` naming the resource whose spec is invalid.
    """
    strategies: list[StrategyResource] = []
    profiles: list[RiskProfileResource] = []
    for m in manifests:
        if m.api_version != API_VERSION or m.kind not in (TRADING_STRATEGY, RISK_PROFILE):
            continue
        ns = str(m.metadata.get("namespace") or namespace)
        generation = int(m.metadata.get("generation") or 0)
        try:
            if m.kind == TRADING_STRATEGY:
                strategies.append(Resource(m.name, TradingStrategySpec.model_validate(m.spec),
                                           ns, generation))
            else:
                profiles.append(Resource(m.name, RiskProfileSpec.model_validate(m.spec),
                                         ns, generation))
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise InvalidConfiguration(f"{m.kind} {ns}/{m.name}: {exc}") from exc
    return strategies, profiles


# -- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicPlan:
    """A topic to exist (the plain twin of ``alphaspt.core.streaming.TopicSpec``)."""

    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyRow:
    namespace: str
    name: str
    spec: TradingStrategySpec
    generation: int

    def upsert_args(self) -> dict[str, Any]:
        """Keyword arguments of ``ConfigRepository.upsert_strategy``."""
        return {"namespace": self.namespace, "name": self.name, "spec": self.spec,
                "generation": self.generation}


@dataclass(frozen=True)
class RiskProfileRow:
    namespace: str
    name: str
    spec: RiskProfileSpec
    generation: int

    def upsert_args(self) -> dict[str, Any]:
        """Keyword arguments of ``ConfigRepository.upsert_risk_profile``."""
        return {"namespace": self.namespace, "name": self.name, "spec": self.spec,
                "generation": self.generation}


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process (one Deployment on Kubernetes, one child process locally)."""

    name: str
    """The worker's name: ``strategy-<strategy name>`` (Deployment name, process name)."""
    namespace: str
    strategy: str
    stage: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    """Plain, non-secret environment."""
    secret_env: tuple[str, ...]
    """Variables that must come from a Secret (Kubernetes) or local settings (``up``)."""
    optional_secret_env: tuple[str, ...]
    """Like ``secret_env``, but only when present."""
    replicas: int
    resources: Mapping[str, Mapping[str, str]]
    """``{"requests": {...}, "limits": {...}}``"""
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    """The subset of ``labels`` that selects the worker's pods (never changes)."""
    config_hash: str
    image: str | None
    """The strategy's own image, else ``None`` (the runtime's default)."""
    broker_secret: str | None = None
    """Live only: the Secret (``brokerSecretRef``) whose keys :data:`BROKER_SECRET_ENV`
    names become the worker's Kite credentials."""


@dataclass(frozen=True)
class StrategyPlan:
    row: StrategyRow
    topics: tuple[TopicPlan, ...]
    """The strategy's own topics (the shared ones come from :func:`shared_topics`)."""
    worker: WorkerSpec


@dataclass(frozen=True)
class Plan:
    strategies: tuple[StrategyRow, ...]
    risk_profiles: tuple[RiskProfileRow, ...]
    topics: tuple[TopicPlan, ...]
    workers: tuple[WorkerSpec, ...]


@dataclass(frozen=True)
class OwnerRef:
    """The custom resource that owns a Deployment."""

    name: str
    uid: str
    kind: str = TRADING_STRATEGY
    api_version: str = API_VERSION


# -- planning -------------------------------------------------------------------------------


def worker_name(strategy: str) -> str:
    return f"strategy-{strategy}"


def state_topic(strategy: str) -> str:
    """The compacted topic where a strategy runner checkpoints its state."""
    return Topics.strategy_state(strategy)


def shared_topics(partitions: int = 3, namespace: str = "default") -> tuple[TopicPlan, ...]:
    """Every pipeline topic and its dead-letter topic, and each stateful shared stage's
    changelog (a partition per input partition when co-partitioned, else one)."""
    return (*(
        TopicPlan(name, partitions)
        for topic in Topics.ALL
        for name in (topic, Topics.dlq(topic))
    ), *(
        TopicPlan(Topics.changelog(stage, namespace), partitions if copartitioned else 1,
                  dict(Topics.CHANGELOG_CONFIG))
        for stage, copartitioned in Topics.CHANGELOG_STAGES.items()
    ))


def strategy_topics(strategy: str, config: PlanConfig | None = None) -> tuple[TopicPlan, ...]:
    partitions = (config or PlanConfig()).state_partitions
    return (TopicPlan(state_topic(strategy), partitions, dict(Topics.CHANGELOG_CONFIG)),)


def replicas_for(state: DesiredState) -> int:
    return 1 if state is DesiredState.RUNNING else 0


def plan_strategy(resource: StrategyResource, config: PlanConfig | None = None) -> StrategyPlan:
    config = config or PlanConfig()
    spec = resource.spec
    name = resource.name
    row = StrategyRow(resource.namespace, name, spec, resource.generation)
    selector = {
        "app.kubernetes.io/name": "alphaspt",
        "app.kubernetes.io/component": STAGE,
        "app.kubernetes.io/instance": name,
    }
    labels = {
        **selector,
        "app.kubernetes.io/part-of": "alphaspt",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        STRATEGY_LABEL: name,
    }
    argv = ("alphaspt", "worker", STAGE, "--strategy", name)
    env = {
        "ALPHASPT_NAMESPACE": resource.namespace,
        "ALPHASPT_STRATEGY": name,
        "ALPHASPT_STAGE": STAGE,
        "ALPHASPT_STATE_TOPIC": state_topic(name),
    }
    resources = effective_resources(spec, config)
    broker_secret = (spec.broker_secret_ref.name
                     if spec.mode is Mode.LIVE and spec.broker_secret_ref is not None else None)
    digest_input = {
        "spec": spec.model_dump(
            mode="json", by_alias=True, exclude={"desired_state", "delete_topics_on_delete"}),
        "argv": argv,
        "env": env,
        "secret_env": CONNECTION_ENV,
        "optional_secret_env": OPTIONAL_CONNECTION_ENV,
        "resources": resources,
    }  # brokerSecretRef is in the spec already
    config_hash = hashlib.sha256(
        json.dumps(digest_input, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    worker = WorkerSpec(
        name=worker_name(name),
        namespace=resource.namespace,
        strategy=name,
        stage=STAGE,
        argv=argv,
        env=env,
        secret_env=CONNECTION_ENV,
        optional_secret_env=OPTIONAL_CONNECTION_ENV,
        replicas=replicas_for(spec.desired_state),
        resources=resources,
        labels=labels,
        selector=selector,
        config_hash=config_hash,
        image=spec.image,
        broker_secret=broker_secret,
    )
    return StrategyPlan(row, strategy_topics(name, config), worker)


def plan(
    strategies: Iterable[StrategyResource],
    risk_profiles: Iterable[RiskProfileResource] = (),
    config: PlanConfig | None = None,
    *,
    require_profiles: bool = True,
) -> Plan:
    """The whole desired state of a set of resources.

    With ``require_profiles`` every strategy's ``riskProfileRef`` must be among
    ``risk_profiles`` of its namespace (:class:`DependencyNotReady` otherwise): without its
    limits the risk manager would refuse every signal.
    """
    config = config or PlanConfig()
    profile_list = sorted(risk_profiles, key=lambda r: (r.namespace, r.name))
    strategy_list = sorted(strategies, key=lambda r: (r.namespace, r.name))
    _no_duplicates(strategy_list, TRADING_STRATEGY)
    _no_duplicates(profile_list, RISK_PROFILE)
    if require_profiles:
        known = {(p.namespace, p.name) for p in profile_list}
        missing = sorted(
            f"{s.namespace}/{s.name} -> {s.spec.risk_profile_ref}"
            for s in strategy_list
            if (s.namespace, s.spec.risk_profile_ref) not in known
        )
        if missing:
            raise DependencyNotReady(f"RiskProfile not found for: {', '.join(missing)}")
    plans = [plan_strategy(s, config) for s in strategy_list]
    topics = {t.name: t for t in shared_topics(config.partitions, config.namespace)}
    for p in plans:
        topics.update((t.name, t) for t in p.topics)
    return Plan(
        strategies=tuple(p.row for p in plans),
        risk_profiles=tuple(RiskProfileRow(r.namespace, r.name, r.spec, r.generation)
                            for r in profile_list),
        topics=tuple(topics[name] for name in sorted(topics)),
        workers=tuple(p.worker for p in plans),
    )


def _no_duplicates(resources: list[Resource[Any]], kind: str) -> None:
    seen: set[tuple[str, str]] = set()
    for r in resources:
        key = (r.namespace, r.name)
        if key in seen:
            raise InvalidConfiguration(f"{kind} {r.namespace}/{r.name} is defined twice")
        seen.add(key)


# -- resources ------------------------------------------------------------------------------

_QUANTITY: Final = re.compile(
    r"^\+?(?P<num>[0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: str) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``1.5Gi``, ``2e3``) as a number.

    Raises :class:`InvalidConfiguration` for anything else, negative values included.
    """
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise InvalidConfiguration(f"not a non-negative Kubernetes quantity: {value!r}")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise InvalidConfiguration(f"not a quantity: {value!r}") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    if suffix:
        return number.scaleb(int(suffix[1:]))
    return number


def effective_resources(
    spec: TradingStrategySpec, config: PlanConfig
) -> dict[str, dict[str, str]]:
    """The strategy's own requests/limits over the runtime's defaults, key by key.

    Only what the resource sets explicitly counts (not the model's defaults). A defaulted
    request above an explicit limit is lowered to the limit, as Kubernetes would refuse it.
    """
    explicit_requests: dict[str, str] = {}
    explicit_limits: dict[str, str] = {}
    if "resources" in spec.model_fields_set:
        given = spec.resources
        if "requests" in given.model_fields_set:
            explicit_requests = dict(given.requests)
        if "limits" in given.model_fields_set:
            explicit_limits = dict(given.limits)
    requests = {**config.default_requests, **explicit_requests}
    limits = {**config.default_limits, **explicit_limits}
    for value in (*requests.values(), *limits.values()):
        parse_quantity(value)
    for key, limit in limits.items():
        if key in requests and parse_quantity(requests[key]) > parse_quantity(limit):
            if key in explicit_requests:
                raise InvalidConfiguration(
                    f"resources.requests.{key}={requests[key]} exceeds limits.{key}={limit}")
            requests[key] = limit
    return {"requests": dict(sorted(requests.items())), "limits": dict(sorted(limits.items()))}


# -- the Deployment -------------------------------------------------------------------------


def plan_deployment(
    worker: WorkerSpec,
    owner: OwnerRef,
    image: str,
    *,
    connection_secret: str,
    image_pull_policy: str = "IfNotPresent",
    service_account: str | None = None,
) -> dict[str, Any]:
    """Render a worker as an ``apps/v1`` Deployment (a plain dict, ready to send).

    ``image`` is used unless the strategy names its own. Credentials only ever come from
    ``connection_secret`` through ``secretKeyRef`` (key = variable name). One replica at
    most, ``Recreate`` (never two runners of one strategy), restricted security context,
    a read-only root filesystem with an ``emptyDir`` at ``/tmp``, no API token mounted.
    """
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(worker.env.items())]
    env += [
        {"name": "ALPHASPT_METRICS__HOST", "value": "0.0.0.0"},
        {"name": "ALPHASPT_METRICS__PORT", "value": str(METRICS_PORT)},
    ]
    env += [
        {"name": name, "valueFrom": {"secretKeyRef": {
            "name": connection_secret, "key": name, "optional": optional}}}
        for names, optional in ((worker.secret_env, False), (worker.optional_secret_env, True))
        for name in names
    ]
    if worker.broker_secret is not None:
        env += [
            {"name": name, "valueFrom": {"secretKeyRef": {
                "name": worker.broker_secret, "key": key, "optional": optional}}}
            for name, key, optional in BROKER_SECRET_ENV
        ]
    annotations = {CONFIG_HASH_ANNOTATION: worker.config_hash}
    container_security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": CONTAINER,
            "image": worker.image or image,
            "imagePullPolicy": image_pull_policy,
            "command": [worker.argv[0]],
            "args": list(worker.argv[1:]),
            "env": env,
            "resources": {k: dict(v) for k, v in worker.resources.items()},
            "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
            # alphaspt.core.health: /healthz fails when the stage's loop stops turning,
            # /readyz until it consumes; WorkerReady follows availability, hence readiness.
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "metrics"},
                "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 3,
                "failureThreshold": 6,
            },
            "readinessProbe": {
                "httpGet": {"path": "/readyz", "port": "metrics"},
                "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3,
            },
            "securityContext": container_security,
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 (in the pod)
        }],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": worker.name,
            "namespace": worker.namespace,
            "labels": dict(worker.labels),
            "annotations": dict(annotations),
            "ownerReferences": [{
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "replicas": worker.replicas,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(worker.selector)},
            "template": {
                "metadata": {"labels": dict(worker.labels), "annotations": dict(annotations)},
                "spec": pod_spec,
            },
        },
    }
