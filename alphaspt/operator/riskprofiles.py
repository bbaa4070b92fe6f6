"""Reconciling a RiskProfile: row, CONFIG_CHANGED / KILL_SWITCH notices, bindings, deletion.

The kill switch is not a rollout: :meth:`RiskProfileReconciler.kill_switch` publishes a
KILL_SWITCH Control on ``control.commands`` (flushed) as soon as kopf sees the change, and
every stage acts on it. A RiskProfile cannot be deleted while a TradingStrategy refers to
it: its finalizer retries, with a Warning event naming them, until none does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from alphaspt.core.events import Command, Topics
from alphaspt.core.specs import RiskProfileSpec
from alphaspt.exceptions import (
    DependencyNotReady,
    InfrastructureUnavailable,
    InvalidConfiguration,
    TemporaryFailure,
)
from alphaspt.operator.conditions import (
    CONFIG_SYNCED,
    FALSE,
    READY,
    RECONCILIATION_PAUSED,
    TRUE,
    Condition,
    as_condition,
    find,
    merge_patch,
    paused_condition,
    reconciliation_paused,
    render_conditions,
    rfc3339,
    same_conditions,
)
from alphaspt.operator.control import control_event
from alphaspt.operator.kube import RISK_PROFILES, TRADING_STRATEGIES
from alphaspt.operator.locks import KeyedLocks
from alphaspt.operator.planning import RISK_PROFILE, TopicPlan
from alphaspt.operator.ports import ConfigStore, ControlSink, EventSink, KubeApi, TopicEnsurer
from alphaspt.operator.strategies import ReconcilerConfig, timed

log = logging.getLogger(__name__)


class RiskProfileReconciler:
    def __init__(
        self,
        config: ReconcilerConfig,
        *,
        kube: KubeApi,
        repo: ConfigStore,
        topics: TopicEnsurer,
        control: ControlSink,
        events: EventSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cfg = config
        self._ns = config.namespace
        self._kube = kube
        self._repo = repo
        self._topics = topics
        self._control = control
        self._events = events
        self._clock = clock
        self._locks = KeyedLocks()
        self._cleanup_failures: dict[str, int] = {}
        self._refresh_queued: set[str] = set()
        self._blocked: dict[str, tuple[str, ...]] = {}
        """Profiles whose deletion waits -> the strategies named in the last event (one
        entry per terminating profile, removed when it goes)."""
        self.on_change: Callable[[str], Awaitable[None]] | None = None
        """Called with the profile's name after its kill switch changed (the strategy
        reconciler refreshes ``Halted`` on the bound strategies)."""

    def _control_topics(self) -> tuple[TopicPlan, ...]:
        partitions = self._cfg.plan.partitions
        return (TopicPlan(Topics.CONTROL, partitions),
                TopicPlan(Topics.dlq(Topics.CONTROL), partitions))

    async def reconcile(self, name: str) -> None:
        """Store the limits, announce CONFIG_CHANGED once per change, refresh the status."""
        async with self._locks.hold(name):
            obj = await self._kube.get_custom(self._ns, RISK_PROFILES, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return
            if reconciliation_paused(obj["metadata"]):
                await self._write(obj, None, paused=True)
                return
            generation = int(obj["metadata"].get("generation") or 0)
            synced = as_condition(find((obj.get("status") or {}).get("conditions"),
                                       CONFIG_SYNCED), CONFIG_SYNCED)
            try:
                spec = RiskProfileSpec.model_validate(obj.get("spec") or {})
            except ValueError as exc:
                message = f"invalid spec: {exc}"[:2000]
                await self._write(obj, Condition(CONFIG_SYNCED, FALSE, "InvalidSpec", message))
                self._events.warn(obj, "InvalidSpec", message)
                raise InvalidConfiguration(message) from exc
            try:
                changed = await timed(
                    self._repo.upsert_risk_profile(self._ns, name, spec, generation),
                    "PostgreSQL", self._cfg.step_timeout)
            except TemporaryFailure as exc:
                await self._failed(obj, synced, "DatabaseUnavailable", exc)
                raise
            announced = synced.ok and _generation_of(obj, CONFIG_SYNCED) == generation
            if changed or not announced:
                try:
                    await timed(self._topics.ensure(self._control_topics()), "Kafka",
                                self._cfg.step_timeout)
                    await timed(self._control.publish(control_event(
                        Command.CONFIG_CHANGED, RISK_PROFILE, self._ns, name, generation)),
                        "Kafka", self._cfg.step_timeout)
                except TemporaryFailure as exc:
                    await self._failed(obj, synced, "KafkaUnavailable", exc)
                    raise
                self._events.info(obj, "ConfigSynced", f"limits of generation {generation} "
                                  "stored; CONFIG_CHANGED published")
            await self._write(obj, Condition(
                CONFIG_SYNCED, TRUE, "Stored",
                f"generation {generation} stored in PostgreSQL and announced"),
                bound=await self.bound_strategies(name, obj))

    async def kill_switch(self, obj: Mapping[str, Any], engaged: bool) -> None:
        """Publish KILL_SWITCH (value = engaged) for this profile and wait for the ack."""
        meta = obj["metadata"]
        event = control_event(Command.KILL_SWITCH, RISK_PROFILE, self._ns, meta["name"],
                              int(meta.get("generation") or 0), value=engaged)
        await timed(self._topics.ensure(self._control_topics()), "Kafka",
                    self._cfg.step_timeout)
        await timed(self._control.publish(event), "Kafka", self._cfg.step_timeout)
        if engaged:
            self._events.warn(obj, "KillSwitchEngaged",
                              "KILL_SWITCH published: the bound strategies stop trading")
        else:
            self._events.info(obj, "KillSwitchReleased", "KILL_SWITCH released")
        if self.on_change is not None:
            await self.on_change(str(meta["name"]))

    async def bound_strategies(self, name: str, profile: Mapping[str, Any] | None = None
                               ) -> list[str]:
        """TradingStrategies of the namespace that reference this profile, except those
        being deleted. Once the profile is being deleted (``profile`` given and
        terminating), only those bound before: no new strategy binds to it."""
        items = await self._kube.list_custom(self._ns, TRADING_STRATEGIES)
        names = {str(i["metadata"]["name"]) for i in items
                 if (i.get("spec") or {}).get("riskProfileRef") == name
                 and not i["metadata"].get("deletionTimestamp")}
        if profile is not None and profile["metadata"].get("deletionTimestamp"):
            names &= set((profile.get("status") or {}).get("boundStrategies") or [])
        return sorted(names)

    async def refresh_binding(self, name: str) -> None:
        """Rewrite ``boundStrategies`` if it changed.

        Coalesced: while one refresh waits for the lock (it has not listed yet), further
        callers return at once; that refresh lists after their change and includes it."""
        if name in self._refresh_queued:
            return
        self._refresh_queued.add(name)
        listing = False
        try:
            async with self._locks.hold(name):
                listing = True
                self._refresh_queued.discard(name)
                obj = await self._kube.get_custom(self._ns, RISK_PROFILES, name)
                if obj is None:
                    return
                await self._write(obj, None, bound=await self.bound_strategies(name, obj))
        finally:
            if not listing:  # cancelled while waiting: let the next caller queue
                self._refresh_queued.discard(name)

    async def sweep(self) -> list[str]:
        """Archive rows whose RiskProfile is gone (see StrategyReconciler.sweep)."""
        rows = await timed(self._repo.list_risk_profiles(self._ns), "PostgreSQL",
                           self._cfg.step_timeout)
        live = {i["metadata"]["name"]
                for i in await self._kube.list_custom(self._ns, RISK_PROFILES)}
        archived = []
        for row in rows:
            if row.name in live:
                continue
            async with self._locks.hold(row.name):
                if await self._kube.get_custom(self._ns, RISK_PROFILES, row.name) is None:
                    await timed(self._repo.archive_risk_profile(self._ns, row.name),
                                "PostgreSQL", self._cfg.step_timeout)
                    archived.append(row.name)
        if archived:
            log.warning("archived the rows of deleted RiskProfiles %s", archived)
        return archived

    async def finalize(self, obj: Mapping[str, Any]) -> None:
        """Refuse (retry later) while strategies reference the profile; then archive its row
        (bounded retries when PostgreSQL is down, then give up with a Warning event)."""
        name = str(obj["metadata"]["name"])
        async with self._locks.hold(name):
            current = await self._kube.get_custom(self._ns, RISK_PROFILES, name)
            bound = await self.bound_strategies(name, current or obj)
            if bound:
                message = (f"RiskProfile {name} is still used by TradingStrategy "
                           f"{', '.join(bound)}: delete them or point them at another "
                           "profile; the deletion completes when none is left")
                if current is not None:
                    await self._write(current, None, bound=bound, ready=Condition(
                        READY, FALSE, "DeletionBlocked", message))
                if self._blocked.get(name) != tuple(bound):  # one event per set, not per retry
                    self._blocked[name] = tuple(bound)
                    self._events.warn(obj, "DeletionBlocked", message)
                raise DependencyNotReady(message, retry_after=self._cfg.retry_delay)
        self._blocked.pop(name, None)
        try:
            await timed(self._repo.archive_risk_profile(self._ns, name), "PostgreSQL",
                        self._cfg.step_timeout)
        except TemporaryFailure as exc:
            failures = self._cleanup_failures.get(name, 0) + 1
            self._cleanup_failures[name] = failures
            if failures < self._cfg.deletion_attempts:
                raise InfrastructureUnavailable(
                    f"archiving attempt {failures}/{self._cfg.deletion_attempts} failed: {exc}",
                    retry_after=self._cfg.retry_delay) from exc
            self._events.warn(obj, "CleanupIncomplete",
                              f"deleted after {failures} failed attempts to archive the row: "
                              f"{exc}")
        else:
            self._events.info(obj, "Finalized", "row archived")
        self._cleanup_failures.pop(name, None)

    async def _failed(self, obj: dict[str, Any], previous: Condition, reason: str,
                      exc: Exception) -> None:
        await self._write(obj, Condition(CONFIG_SYNCED, FALSE, reason, str(exc)[:2000]))
        if previous.reason != reason:
            self._events.warn(obj, reason, str(exc)[:1000])

    async def _write(self, obj: dict[str, Any], synced: Condition | None,
                     bound: list[str] | None = None, *, ready: Condition | None = None,
                     paused: bool = False) -> None:
        meta = obj["metadata"]
        current = obj.get("status") or {}
        desired: dict[str, Any] = {}
        generation = int(meta.get("generation") or 0)
        given: list[Condition] = []
        if synced is not None:
            given = [synced, Condition(
                READY, synced.status, "Reconciled" if synced.ok else synced.reason,
                "limits stored and announced" if synced.ok else synced.message)]
            desired["observedGeneration"] = generation
        if ready is not None:
            given = [*(c for c in given if c.type != READY), ready]
        if paused:
            given.append(paused_condition())
        if given:
            conditions = [c for c in render_conditions(current.get("conditions"), given,
                                                       generation, rfc3339(self._clock()))
                          if paused or c["type"] != RECONCILIATION_PAUSED]
            if not same_conditions(current.get("conditions"), conditions):
                desired["conditions"] = conditions
        if bound is not None:
            desired["boundStrategies"] = bound
            desired["boundStrategyCount"] = len(bound)
        patch = merge_patch(current, desired)
        if patch:
            updated = await self._kube.patch_custom_status(self._ns, RISK_PROFILES,
                                                           meta["name"], patch)
            if updated is not None:
                obj["status"] = updated.get("status") or {}


def _generation_of(obj: Mapping[str, Any], type_: str) -> int:
    found = find((obj.get("status") or {}).get("conditions"), type_)
    return int((found or {}).get("observedGeneration") or 0)
