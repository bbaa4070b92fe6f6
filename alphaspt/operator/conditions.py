"""Status of the custom resources, computed from observations. Pure (no I/O).

TradingStrategy conditions (standard shape: type, status, reason, message,
lastTransitionTime, observedGeneration):

- ``ConfigSynced``: the spec of this generation is stored in PostgreSQL (and its RiskProfile
  exists);
- ``TopicsReady``: the shared pipeline topics and the strategy's state topic exist;
- ``WorkerReady``: the strategy-runner Deployment is as desired. With ``desiredState:
  Running``: the rollout of the current configuration is complete and a replica is
  available (``availableReplicas``, and the Deployment's ``Available`` condition when it
  reports one). With ``Paused`` or ``Stopped``: the Deployment is scaled to zero and no pod
  remains;
- ``Ready``: all three are true for the current generation.

So ``Ready`` means "the strategy is in the state you asked for" (``kubectl wait
--for=condition=Ready ts/NAME`` after any change, pausing included); ``phase`` says which
state that is: Pending, Starting, Running, Halted, Paused, Stopped, Degraded or Failed.

Two more conditions say what overrides that:

- ``Halted``: ``True`` (reason ``KillSwitch``, naming the RiskProfile) while the bound
  RiskProfile's kill switch is on; the phase of a running strategy is then ``Halted``;
- ``ReconciliationPaused``: present while the ``alphaspt.io/pause-reconciliation: "true"``
  annotation is set (Strimzi's convention); the operator then changes nothing.

A sync that fails because PostgreSQL or Kafka is down (reasons :data:`OUTAGE_REASONS`)
makes ``Ready`` false with that reason but leaves the phase to the worker: a Running
strategy whose configuration cannot be stored is still Running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from alphaspt.core.specs import DesiredState
from alphaspt.core.views import StrategyView

TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"

READY: Final = "Ready"
CONFIG_SYNCED: Final = "ConfigSynced"
TOPICS_READY: Final = "TopicsReady"
WORKER_READY: Final = "WorkerReady"
HALTED: Final = "Halted"
RECONCILIATION_PAUSED: Final = "ReconciliationPaused"
STRATEGY_CONDITIONS: Final = (READY, CONFIG_SYNCED, TOPICS_READY, WORKER_READY, HALTED,
                              RECONCILIATION_PAUSED)
OUTAGE_REASONS: Final = frozenset({"DatabaseUnavailable", "KafkaUnavailable"})
"""Reasons that mean "a server the operator needs is down", not "the spec is wrong"."""
PAUSE_ANNOTATION: Final = "alphaspt.io/pause-reconciliation"


def reconciliation_paused(metadata: Mapping[str, Any]) -> bool:
    """Whether the object carries ``alphaspt.io/pause-reconciliation: "true"``."""
    value = (metadata.get("annotations") or {}).get(PAUSE_ANNOTATION)
    return str(value).strip().lower() == "true"


def paused_condition() -> Condition:
    return Condition(RECONCILIATION_PAUSED, TRUE, "PauseAnnotation",
                     f"{PAUSE_ANNOTATION} is true: the operator changes nothing until it is "
                     "removed")


def halted_condition(profile: str, kill_switch: bool) -> Condition:
    if kill_switch:
        return Condition(HALTED, TRUE, "KillSwitch",
                         f"the kill switch of RiskProfile {profile} is on: no new orders")
    return Condition(HALTED, FALSE, "KillSwitchOff",
                     f"the kill switch of RiskProfile {profile} is off")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == TRUE


def rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for c in conditions or ():
        if c.get("type") == type_:
            return c
    return None


def as_condition(raw: Mapping[str, Any] | None, type_: str) -> Condition:
    if raw is None:
        return Condition(type_, UNKNOWN, "NotObserved", "")
    return Condition(type_, str(raw.get("status", UNKNOWN)), str(raw.get("reason", "Unknown")),
                     str(raw.get("message", "")))


def render_conditions(
    existing: Iterable[Mapping[str, Any]] | None,
    conditions: Iterable[Condition],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Conditions as stored in ``status``; ``lastTransitionTime`` only moves when the
    status does. Conditions not given are kept as they were."""
    old = {str(c.get("type")): c for c in existing or ()}
    rendered: dict[str, dict[str, Any]] = {k: dict(v) for k, v in old.items()}
    for c in conditions:
        previous = old.get(c.type)
        changed = previous is None or previous.get("status") != c.status
        rendered[c.type] = {
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "observedGeneration": generation,
            "lastTransitionTime": now if changed or previous is None
            else str(previous.get("lastTransitionTime") or now),
        }
    return [rendered[k] for k in sorted(rendered)]


def same_conditions(current: Any, rendered: list[dict[str, Any]]) -> bool:
    """Equal as sets (the API server may keep another order)."""
    if not isinstance(current, list) or len(current) != len(rendered):
        return False
    key = {str(c.get("type")): c for c in current if isinstance(c, dict)}
    return all(key.get(c["type"]) == c for c in rendered)


def worker_condition(deployment: Mapping[str, Any] | None, replicas: int) -> Condition:
    """``WorkerReady`` from the Deployment as the Deployment controller reports it."""
    if deployment is None:
        return Condition(WORKER_READY, FALSE, "DeploymentMissing",
                         "the strategy-runner Deployment does not exist yet")
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    status = deployment.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return Condition(WORKER_READY, FALSE, "RolloutPending",
                         f"the Deployment controller has not observed generation {generation}")
    running = int(status.get("replicas") or 0)
    if replicas == 0:
        if running:
            return Condition(WORKER_READY, FALSE, "ScalingDown", f"{running} pod(s) still running")
        return Condition(WORKER_READY, TRUE, "ScaledToZero", "no worker runs, as desired")
    progressing = find(status.get("conditions"), "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Condition(WORKER_READY, FALSE, "ProgressDeadlineExceeded",
                         str(progressing.get("message") or "the rollout is stuck"))
    updated = int(status.get("updatedReplicas") or 0)
    if updated < replicas or running > updated:
        return Condition(WORKER_READY, FALSE, "RolloutInProgress",
                         f"{updated}/{replicas} replica(s) run the current configuration")
    available = int(status.get("availableReplicas") or 0)
    available_condition = find(status.get("conditions"), "Available")
    if available < replicas or (
        available_condition is not None and available_condition.get("status") != TRUE
    ):
        detail = (str(available_condition.get("message") or "")
                  if available_condition is not None else "")
        return Condition(WORKER_READY, FALSE, "WorkerUnavailable",
                         f"{available}/{replicas} replica(s) available. {detail}".strip())
    return Condition(WORKER_READY, TRUE, "WorkerAvailable",
                     f"{available}/{replicas} replica(s) available")


def ready_condition(*parts: Condition) -> Condition:
    failing = [p for p in parts if not p.ok]
    if not failing:
        return Condition(READY, TRUE, "Reconciled", "configuration, topics and worker as desired")
    first = failing[0]
    return Condition(READY, FALSE, first.reason,
                     "; ".join(f"{p.type}: {p.message or p.reason}" for p in failing))


def strategy_phase(
    desired: DesiredState, config: Condition, topics: Condition, worker: Condition,
    *, failed: bool = False, halted: bool = False,
) -> str:
    if failed:
        return "Failed"
    unsynced = [c for c in (config, topics) if not c.ok]
    if any(c.reason not in OUTAGE_REASONS for c in unsynced):
        return "Pending"
    if unsynced and worker.status != TRUE and worker.reason == "NotObserved":
        return "Pending"  # an outage before the worker was ever seen
    if desired is DesiredState.PAUSED:
        return "Paused"
    if desired is DesiredState.STOPPED:
        return "Stopped"
    if halted:
        return "Halted"
    if worker.ok:
        return "Running"
    if worker.reason in ("WorkerUnavailable", "ProgressDeadlineExceeded"):
        return "Degraded"
    return "Starting"


def merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``desired``, restricted
    to the keys of ``desired`` at the top level; nested mappings are made equal (keys
    missing from ``desired`` become ``None``). Empty when nothing would change."""
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            nested = merge_patch(have, want)
            nested.update({k: None for k in have if k not in want})
            if nested:
                patch[key] = nested
        elif have != want:
            patch[key] = want
    return patch


def runtime_summary(view: StrategyView) -> dict[str, Any]:
    """``status.runtime`` of a TradingStrategy from its portfolio read model."""
    summary: dict[str, Any] = {
        "positions": {p.symbol: int(p.quantity) for p in sorted(
            view.positions, key=lambda p: p.symbol) if p.quantity},
        "realisedPnl": round(view.realised_pnl, 2),
        "unrealisedPnl": round(view.unrealised_pnl, 2),
        "charges": round(view.charges, 2),
        "netPnl": round(view.net_pnl, 2),
        "orders": int(view.orders),
        "fills": int(view.fills),
        "rejections": int(view.rejections),
    }
    if view.updated_at > 0:
        summary["lastHeartbeat"] = rfc3339(view.updated_at)
    return summary
