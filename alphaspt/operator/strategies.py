"""Reconciling a TradingStrategy: row, topics, strategy-runner Deployment, status.

One idempotent :meth:`StrategyReconciler.reconcile` serves create, resume, update, the
drift timer and Deployment events: it reads the resource, plans it with the pure
:func:`~alphaspt.operator.planning.plan_strategy`, makes the world match (get, then create
or patch; a 409 means someone else got there first) and writes ``status`` only when it
differs. Everything it calls is behind the protocols of :mod:`alphaspt.operator.ports`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from alphaspt.core.events import Command
from alphaspt.core.specs import DesiredState, Mode, TradingStrategySpec
from alphaspt.exceptions import (
    AlphasptError,
    DependencyNotReady,
    InfrastructureUnavailable,
    InvalidConfiguration,
    TemporaryFailure,
)
from alphaspt.operator.conditions import (
    CONFIG_SYNCED,
    FALSE,
    HALTED,
    RECONCILIATION_PAUSED,
    TOPICS_READY,
    TRUE,
    WORKER_READY,
    Condition,
    as_condition,
    find,
    halted_condition,
    merge_patch,
    paused_condition,
    ready_condition,
    reconciliation_paused,
    render_conditions,
    rfc3339,
    runtime_summary,
    same_conditions,
    strategy_phase,
    worker_condition,
)
from alphaspt.operator.control import control_event
from alphaspt.operator.kube import RISK_PROFILES, TRADING_STRATEGIES, Conflict
from alphaspt.operator.locks import KeyedLocks
from alphaspt.operator.planning import (
    BROKER_SECRET_VERSION_ANNOTATION,
    MANAGED_BY,
    STRATEGY_LABEL,
    TRADING_STRATEGY,
    OwnerRef,
    PlanConfig,
    Resource,
    StrategyPlan,
    parse_quantity,
    plan_deployment,
    plan_strategy,
    shared_topics,
    state_topic,
    worker_name,
)
from alphaspt.operator.ports import (
    ConfigStore,
    ControlSink,
    EventSink,
    KubeApi,
    OutageSource,
    RuntimeSource,
    TopicEnsurer,
)
from alphaspt.operator.validation import check_strategy

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ReconcilerConfig:
    namespace: str
    plan: PlanConfig = field(default_factory=PlanConfig)
    worker_image: str = "ghcr.io/alphaspt/alphaspt-worker:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    connection_secret: str = "alphaspt-connections"  # noqa: S105 (a Secret's name)
    service_account: str | None = None
    retry_delay: float = 10.0
    deletion_attempts: int = 3
    step_timeout: float = 15.0
    """Longest wait for one call to PostgreSQL, Kafka or Redis."""
    runtime_write_interval: float = 30.0
    """Least seconds between two writes of a strategy's ``status.runtime``."""


async def timed(awaitable: Awaitable[T], what: str, seconds: float) -> T:
    """Await with a deadline; a timeout means the server is unavailable."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError as exc:
        raise InfrastructureUnavailable(f"{what} did not answer within {seconds:.0f}s") from exc


class StrategyReconciler:
    def __init__(
        self,
        config: ReconcilerConfig,
        *,
        kube: KubeApi,
        repo: ConfigStore,
        topics: TopicEnsurer,
        control: ControlSink,
        runtime: RuntimeSource | None,
        events: EventSink,
        on_binding: Callable[[str], Awaitable[None]] | None = None,
        outages: OutageSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``on_binding(profile)`` is called when a strategy starts or stops referencing a
        RiskProfile (the RiskProfile reconciler refreshes its ``boundStrategies``)."""
        self._cfg = config
        self._ns = config.namespace
        self._kube = kube
        self._repo = repo
        self._topics = topics
        self._control = control
        self._runtime = runtime
        self._events = events
        self._on_binding = on_binding
        self._outages = outages
        self._clock = clock
        self._locks = KeyedLocks()
        self._cleanup_failures: dict[str, int] = {}
        self._runtime_written: dict[str, float] = {}
        """uid -> when status.runtime was last written (bounded: one entry per live
        strategy; removed at deletion and by the sweep)."""

    # -- reconcile -------------------------------------------------------------------------

    async def reconcile(self, name: str, *, full: bool = True, refresh_topics: bool = False
                        ) -> None:
        """Make row, topics and Deployment match the resource; write its status.

        ``full=False`` (Deployment events) only repairs the Deployment and refreshes
        ``WorkerReady``, once a full reconcile of the current generation has succeeded.
        Raises TemporaryFailure (retry later) or InvalidConfiguration (fix the spec).
        """
        async with self._locks.hold(name):
            obj = await self._kube.get_custom(self._ns, TRADING_STRATEGIES, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return
            unbound_profile = await self._reconcile(obj, full=full,
                                                    refresh_topics=refresh_topics)
        if unbound_profile and self._on_binding is not None:
            await self._on_binding(unbound_profile)

    async def _reconcile(self, obj: dict[str, Any], *, full: bool, refresh_topics: bool
                         ) -> str | None:
        """Returns the RiskProfile whose ``boundStrategies`` lacks this strategy, if any."""
        meta = obj["metadata"]
        name = str(meta["name"])
        generation = int(meta.get("generation") or 0)
        status = obj.get("status") or {}
        conds = {t: as_condition(find(status.get("conditions"), t), t)
                 for t in (CONFIG_SYNCED, TOPICS_READY, WORKER_READY)}
        if reconciliation_paused(meta):
            await self._write_paused(obj)
            return None
        try:
            spec = TradingStrategySpec.model_validate(obj.get("spec") or {})
            plan = plan_strategy(Resource(name, spec, self._ns, generation), self._cfg.plan)
        except (ValueError, InvalidConfiguration) as exc:
            message = f"invalid spec: {exc}"[:2000]
            await self._fail(obj, conds, DesiredState.STOPPED, CONFIG_SYNCED, "InvalidSpec",
                             message, failed=True)
            raise InvalidConfiguration(message) from exc
        try:
            check_strategy(name, spec, self._ns)
        except InvalidConfiguration as exc:
            # The runner would refuse to start: no Deployment for this configuration (one
            # of an earlier, valid generation keeps running until the spec is fixed).
            message = str(exc)[:2000]
            await self._fail(obj, conds, spec.desired_state, CONFIG_SYNCED, "InvalidStrategy",
                             message, failed=True)
            raise InvalidConfiguration(message) from exc

        profile = await self._kube.get_custom(self._ns, RISK_PROFILES, spec.risk_profile_ref)
        if profile is not None:
            conds[HALTED] = halted_condition(
                spec.risk_profile_ref, bool((profile.get("spec") or {}).get("killSwitch")))
        secret_version = await self._broker_secret(obj, spec, conds)
        unbound = None
        if full:
            unbound = await self._sync_config(obj, spec, profile, conds, generation)
            await self._sync_topics(obj, plan, conds, refresh_topics)
        elif not (conds[CONFIG_SYNCED].ok and conds[TOPICS_READY].ok
                  and status.get("observedGeneration") == generation):
            return None  # the full reconcile of this generation has not succeeded yet

        deployment = await self._apply_deployment(obj, plan, secret_version)
        conds[WORKER_READY] = worker_condition(deployment, plan.worker.replicas)
        await self._write(obj, conds, spec.desired_state, extra={
            "workerDeployment": plan.worker.name,
            "configHash": plan.worker.config_hash,
        })
        return unbound

    async def _broker_secret(self, obj: dict[str, Any], spec: TradingStrategySpec,
                             conds: dict[str, Condition]) -> str | None:
        """A Live strategy's ``brokerSecretRef`` Secret must exist (its resourceVersion is
        returned); else ``BrokerSecretMissing`` and no Deployment until it does."""
        if spec.mode is not Mode.LIVE or spec.broker_secret_ref is None:
            return None
        secret_name = spec.broker_secret_ref.name
        found = await self._kube.get_secret_metadata(self._ns, secret_name)
        if found is None:
            message = (f"Secret {secret_name} (brokerSecretRef) does not exist in namespace "
                       f"{self._ns}: create it with the keys api_key, api_secret and "
                       "access_token (alphaspt kite login writes the token)")
            await self._fail(obj, conds, spec.desired_state, CONFIG_SYNCED,
                             "BrokerSecretMissing", message)
            raise DependencyNotReady(message, retry_after=self._cfg.retry_delay)
        return str((found.get("metadata") or {}).get("resourceVersion") or "")

    def _outage(self, server: str) -> str | None:
        return None if self._outages is None else self._outages.outages().get(server)

    async def _sync_config(self, obj: dict[str, Any], spec: TradingStrategySpec,
                           profile: Mapping[str, Any] | None, conds: dict[str, Condition],
                           generation: int) -> str | None:
        name = obj["metadata"]["name"]
        state = spec.desired_state
        if profile is None:
            message = (f"RiskProfile {spec.risk_profile_ref} does not exist in namespace "
                       f"{self._ns}; waiting for it")
            await self._fail(obj, conds, state, CONFIG_SYNCED, "RiskProfileNotFound", message)
            raise DependencyNotReady(message, retry_after=self._cfg.retry_delay)
        bound = (profile.get("status") or {}).get("boundStrategies") or []
        if profile["metadata"].get("deletionTimestamp") and name not in bound:
            message = (f"RiskProfile {spec.risk_profile_ref} is being deleted: no new "
                       "strategy binds to it; point riskProfileRef at another profile")
            await self._fail(obj, conds, state, CONFIG_SYNCED, "RiskProfileTerminating",
                             message)
            raise DependencyNotReady(message, retry_after=self._cfg.retry_delay)
        down = self._outage("PostgreSQL")
        try:
            if down is not None:
                raise InfrastructureUnavailable(f"PostgreSQL is unavailable: {down}",
                                                retry_after=self._cfg.retry_delay)
            changed = await timed(
                self._repo.upsert_strategy(self._ns, name, spec, generation),
                "PostgreSQL", self._cfg.step_timeout)
        except TemporaryFailure as exc:
            await self._fail(obj, conds, state, CONFIG_SYNCED, "DatabaseUnavailable", str(exc))
            raise
        conds[CONFIG_SYNCED] = Condition(CONFIG_SYNCED, TRUE, "Stored",
                                         f"generation {generation} is stored in PostgreSQL")
        if changed:
            self._events.info(obj, "ConfigSynced",
                              f"configuration of generation {generation} stored in PostgreSQL")
        return None if name in bound else spec.risk_profile_ref

    async def _sync_topics(self, obj: dict[str, Any], plan: StrategyPlan,
                           conds: dict[str, Condition], refresh: bool) -> None:
        topics = (*shared_topics(self._cfg.plan.partitions, self._cfg.plan.namespace), *plan.topics)
        down = self._outage("Kafka")
        try:
            if down is not None:
                raise InfrastructureUnavailable(f"Kafka is unavailable: {down}",
                                                retry_after=self._cfg.retry_delay)
            created = await timed(self._topics.ensure(topics, refresh=refresh), "Kafka",
                                  self._cfg.step_timeout)
        except TemporaryFailure as exc:
            await self._fail(obj, conds, plan.row.spec.desired_state, TOPICS_READY,
                             "KafkaUnavailable", str(exc))
            raise
        conds[TOPICS_READY] = Condition(
            TOPICS_READY, TRUE, "TopicsExist",
            f"{len(topics)} topics exist, including {state_topic(plan.row.name)}")
        if created:
            self._events.info(obj, "TopicsCreated", "created " + ", ".join(sorted(created)))

    async def _fail(self, obj: dict[str, Any], conds: dict[str, Condition],
                    state: DesiredState, type_: str, reason: str, message: str, *,
                    failed: bool = False) -> None:
        """Write the failing condition; one Warning event per new reason or message (not
        one per retry or resync)."""
        previous = conds[type_]
        conds[type_] = Condition(type_, FALSE, reason, message[:2000])
        await self._write(obj, conds, state, failed=failed)
        if previous.reason != reason or (failed and previous.message != message[:2000]):
            self._events.warn(obj, reason, message[:1000])

    async def _write_paused(self, obj: dict[str, Any]) -> None:
        current = obj.get("status") or {}
        conditions = render_conditions(current.get("conditions"), [paused_condition()],
                                       int(obj["metadata"].get("generation") or 0),
                                       rfc3339(self._clock()))
        if not same_conditions(current.get("conditions"), conditions):
            log.info("TradingStrategy %s/%s: reconciliation paused by annotation", self._ns,
                     obj["metadata"]["name"])
            await self._patch_status(obj, {"conditions": conditions})

    async def _write(self, obj: dict[str, Any], conds: dict[str, Condition],
                     state: DesiredState, *, failed: bool = False,
                     extra: Mapping[str, Any] | None = None) -> None:
        """Patch ``status`` with what changed, if anything did."""
        meta = obj["metadata"]
        generation = int(meta.get("generation") or 0)
        current = obj.get("status") or {}
        config, topics, worker = conds[CONFIG_SYNCED], conds[TOPICS_READY], conds[WORKER_READY]
        all_conditions = [config, topics, worker, ready_condition(config, topics, worker)]
        halted = conds.get(HALTED)
        if halted is not None:
            all_conditions.append(halted)
        now = rfc3339(self._clock())
        rendered = [c for c in render_conditions(current.get("conditions"), all_conditions,
                                                 generation, now)
                    if c["type"] != RECONCILIATION_PAUSED]
        desired = {
            "observedGeneration": generation,
            "phase": strategy_phase(state, config, topics, worker, failed=failed,
                                    halted=halted is not None and halted.ok),
            "conditions": rendered,
            **(extra or {}),
        }
        if same_conditions(current.get("conditions"), rendered):
            desired["conditions"] = current.get("conditions")
        await self._patch_status(obj, merge_patch(current, desired))

    async def _patch_status(self, obj: dict[str, Any], patch: Mapping[str, Any]) -> None:
        if patch:
            updated = await self._kube.patch_custom_status(
                self._ns, TRADING_STRATEGIES, obj["metadata"]["name"], patch)
            if updated is not None:
                obj["status"] = updated.get("status") or {}

    # -- the Deployment --------------------------------------------------------------------

    async def _apply_deployment(self, obj: dict[str, Any], plan: StrategyPlan,
                                secret_version: str | None = None) -> dict[str, Any]:
        meta = obj["metadata"]
        manifest = plan_deployment(
            plan.worker,
            OwnerRef(name=meta["name"], uid=meta["uid"]),
            self._cfg.worker_image,
            connection_secret=self._cfg.connection_secret,
            image_pull_policy=self._cfg.image_pull_policy,
            service_account=self._cfg.service_account,
        )
        if secret_version:
            manifest["spec"]["template"]["metadata"]["annotations"][
                BROKER_SECRET_VERSION_ANNOTATION] = secret_version
        name = plan.worker.name
        existing = await self._kube.get_deployment(self._ns, name)
        if existing is None:
            try:
                created = await self._kube.create_deployment(self._ns, manifest)
            except Conflict:
                existing = await self._kube.get_deployment(self._ns, name)
                if existing is None:
                    raise
            else:
                self._events.info(obj, "DeploymentCreated",
                                  f"created Deployment {name} with {plan.worker.replicas} "
                                  f"replica(s), config {plan.worker.config_hash}")
                return created
        _check_owner(existing, meta)
        if contains(existing, manifest):
            return existing
        patched = await self._kube.patch_deployment(self._ns, name, manifest)
        if patched is None:  # deleted in between: the next event recreates it
            raise Conflict(f"Deployment {name} disappeared while being patched")
        old_hash = (existing["spec"]["template"]["metadata"].get("annotations") or {}).get(
            "alphaspt.io/config-hash")
        what = (f"config {old_hash} -> {plan.worker.config_hash} (pods roll)"
                if old_hash != plan.worker.config_hash
                else f"replicas {existing['spec'].get('replicas')} -> {plan.worker.replicas}"
                if existing["spec"].get("replicas") != plan.worker.replicas
                else "repaired changes made by hand")
        self._events.info(obj, "DeploymentUpdated", f"patched Deployment {name}: {what}")
        return patched

    # -- desiredState, runtime, deletion ---------------------------------------------------

    async def announce_state(self, obj: Mapping[str, Any], old: str | None, new: str | None
                             ) -> None:
        """PAUSE when a strategy is paused or stopped, RESUME when it runs again, on
        ``control.commands``, before its worker is scaled."""
        if new is None:
            return
        state = DesiredState(new)
        previous = DesiredState(old) if old else None
        if state is not DesiredState.RUNNING:
            command = Command.PAUSE
        elif previous in (DesiredState.PAUSED, DesiredState.STOPPED):
            command = Command.RESUME
        else:
            return
        meta = obj["metadata"]
        event = control_event(command, TRADING_STRATEGY, self._ns, meta["name"],
                              int(meta.get("generation") or 0))
        await timed(self._control.publish(event), "Kafka", self._cfg.step_timeout)
        self._events.info(obj, f"{command.value.title()}Announced",
                          f"{command.value} for {meta['name']} published on control.commands")

    async def refresh_runtime(self, name: str) -> None:
        """Copy the strategy's portfolio summary from Redis into ``status.runtime``: only
        when something but the heartbeat changed, and at most once per
        ``runtime_write_interval`` per strategy (etcd writes stay bounded with many
        strategies). Data older than the object is a deleted namesake's: never shown."""
        if self._runtime is None:
            return
        view = await timed(self._runtime.strategy(name), "Redis", self._cfg.step_timeout)
        if view is None:
            return
        async with self._locks.hold(name):
            obj = await self._kube.get_custom(self._ns, TRADING_STRATEGIES, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return
            meta = obj["metadata"]
            if view.updated_at < _created_at(meta):
                return
            summary = runtime_summary(view)
            current = (obj.get("status") or {}).get("runtime") or {}
            if _without_heartbeat(current) == _without_heartbeat(summary):
                return
            uid = str(meta.get("uid") or name)
            now = self._clock()
            last = self._runtime_written.get(uid)
            if last is not None and now - last < self._cfg.runtime_write_interval:
                return
            patch = merge_patch(obj.get("status") or {}, {"runtime": summary})
            if patch:
                await self._kube.patch_custom_status(self._ns, TRADING_STRATEGIES, name, patch)
                self._runtime_written[uid] = now

    async def reconcile_bound(self, profile: str) -> None:
        """The RiskProfile changed (its kill switch): refresh ``Halted`` and the phase of
        every strategy bound to it now, without waiting for the resync."""
        for item in await self._kube.list_custom(self._ns, TRADING_STRATEGIES):
            if (item.get("spec") or {}).get("riskProfileRef") == profile:
                await self._reconcile_logged(str(item["metadata"]["name"]), full=False)

    async def reconcile_all(self) -> None:
        """Reconcile every strategy (a server went down or came back)."""
        for item in await self._kube.list_custom(self._ns, TRADING_STRATEGIES):
            await self._reconcile_logged(str(item["metadata"]["name"]), full=True)

    async def _reconcile_logged(self, name: str, *, full: bool) -> None:
        try:
            await self.reconcile(name, full=full)
        except AlphasptError as exc:  # the status says it; kopf's own retries go on
            log.info("TradingStrategy %s/%s: %s", self._ns, name, exc)

    async def sweep(self) -> list[str]:
        """Archive rows whose TradingStrategy is gone (its deletion gave up while
        PostgreSQL was down). Rows are listed before resources, so a strategy created
        meanwhile is never archived; returns the names archived."""
        rows = await timed(self._repo.list_strategies(self._ns), "PostgreSQL",
                           self._cfg.step_timeout)
        items = await self._kube.list_custom(self._ns, TRADING_STRATEGIES)
        live = {i["metadata"]["name"] for i in items}
        uids = {str(i["metadata"].get("uid")) for i in items}
        for uid in [u for u in self._runtime_written if u not in uids]:
            del self._runtime_written[uid]
        archived = []
        for row in rows:
            if row.name in live:
                continue
            async with self._locks.hold(row.name):
                if await self._kube.get_custom(self._ns, TRADING_STRATEGIES, row.name) is None:
                    await timed(self._repo.archive_strategy(self._ns, row.name), "PostgreSQL",
                                self._cfg.step_timeout)
                    archived.append(row.name)
        if archived:
            log.warning("archived the rows of deleted TradingStrategies %s", archived)
        return archived

    async def profile_changed(self, old: str | None) -> None:
        """``riskProfileRef`` changed: the old profile loses this strategy."""
        if old and self._on_binding is not None:
            await self._on_binding(old)

    async def finalize(self, obj: Mapping[str, Any]) -> None:
        """Clean up before the resource goes: announce PAUSE, delete the Deployment, archive
        the row, delete the strategy's own topic only if ``deleteTopicsOnDelete``.

        Kafka or PostgreSQL failures are retried ``deletion_attempts`` times (raising
        TemporaryFailure in between); then a Warning event says what was left undone and
        the deletion completes anyway. The Kubernetes API itself must answer.
        """
        meta = obj["metadata"]
        name = str(meta["name"])
        spec = obj.get("spec") or {}
        problems: list[str] = []
        self._runtime_written.pop(str(meta.get("uid")), None)
        async with self._locks.hold(name):
            try:
                await timed(self._control.publish(control_event(
                    Command.PAUSE, TRADING_STRATEGY, self._ns, name,
                    int(meta.get("generation") or 0))), "Kafka", self._cfg.step_timeout)
            except TemporaryFailure as exc:
                problems.append(f"PAUSE not announced ({exc})")
            if await self._kube.delete_deployment(self._ns, worker_name(name)):
                self._events.info(obj, "DeploymentDeleted", f"deleted {worker_name(name)}")
            try:
                await timed(self._repo.archive_strategy(self._ns, name), "PostgreSQL",
                            self._cfg.step_timeout)
            except TemporaryFailure as exc:
                problems.append(f"row not archived ({exc})")
            kept = "topic data kept"
            if spec.get("deleteTopicsOnDelete"):
                try:
                    deleted = await timed(self._topics.delete([state_topic(name)]), "Kafka",
                                          self._cfg.step_timeout)
                    kept = f"deleted topics {', '.join(deleted) or '(none existed)'}"
                except TemporaryFailure as exc:
                    problems.append(f"topic {state_topic(name)} not deleted ({exc})")
            if problems:
                failures = self._cleanup_failures.get(name, 0) + 1
                self._cleanup_failures[name] = failures
                summary = "; ".join(problems)
                if failures < self._cfg.deletion_attempts:
                    raise InfrastructureUnavailable(
                        f"clean-up attempt {failures}/{self._cfg.deletion_attempts} "
                        f"failed: {summary}", retry_after=self._cfg.retry_delay)
                self._events.warn(obj, "CleanupIncomplete",
                                  f"deleted after {failures} failed clean-up attempts: {summary}")
            else:
                self._events.info(obj, "Finalized", f"row archived, {kept}")
            self._cleanup_failures.pop(name, None)
        profile = spec.get("riskProfileRef")
        if profile and self._on_binding is not None:
            try:
                await self._on_binding(str(profile))
            except TemporaryFailure as exc:
                log.warning("refreshing RiskProfile %s after deleting %s: %s", profile, name, exc)


def _created_at(meta: Mapping[str, Any]) -> float:
    """``creationTimestamp`` as epoch seconds (0 when absent)."""
    stamp = meta.get("creationTimestamp")
    if not stamp:
        return 0.0
    return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _without_heartbeat(runtime: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in runtime.items() if k != "lastHeartbeat"}


def _check_owner(existing: Mapping[str, Any], owner_meta: Mapping[str, Any]) -> None:
    meta = existing.get("metadata") or {}
    name = meta.get("name")
    controller = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")),
                      None)
    if controller is None:
        labels = meta.get("labels") or {}
        if (labels.get("app.kubernetes.io/managed-by") == MANAGED_BY
                and labels.get(STRATEGY_LABEL) == owner_meta["name"]):
            return  # ours, lost its owner reference (hand edit): adopt it again
        raise InvalidConfiguration(
            f"Deployment {name} exists and is not managed by alphaspt: rename or delete it")
    if controller.get("uid") == owner_meta["uid"]:
        return
    if controller.get("kind") == TRADING_STRATEGY and controller.get("name") == owner_meta["name"]:
        return  # a previous TradingStrategy of the same name (it is gone): take over
    raise InvalidConfiguration(
        f"Deployment {name} is controlled by {controller.get('kind')} {controller.get('name')}")


_QUANTITY_PARENTS = frozenset({"requests", "limits"})


def contains(actual: Any, desired: Any, path: tuple[str, ...] = ()) -> bool:
    """Whether ``actual`` (as stored by the API server, with its defaults) already has
    every value of ``desired``. Lists must match element by element (same length), so an
    extra container, env var or volume added by hand counts as drift; quantities compare
    by value (the API server writes ``0.5`` as ``500m``)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and contains(actual[k], v, (*path, k)) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(actual, list) and len(actual) == len(desired)
                and all(contains(a, d, path) for a, d in zip(actual, desired, strict=True)))
    quantity = (len(path) >= 2 and path[-2] in _QUANTITY_PARENTS) or path[-1:] == ("sizeLimit",)
    if quantity and isinstance(desired, str) and isinstance(actual, str):
        try:
            return parse_quantity(actual) == parse_quantity(desired)
        except InvalidConfiguration:
            return actual == desired
    return bool(actual == desired)
