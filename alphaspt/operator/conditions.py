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
state that is: Pending, Starting, Running, Paused, Stopped, Degraded or Failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from alphaspt.core.specs import DesiredState

TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"

READY: Final = "Ready"
CONFIG_SYNCED: Final = "ConfigSynced"
TOPICS_READY: Final = "TopicsReady"
WORKER_READY: Final = "WorkerReady"
STRATEGY_CONDITIONS: Final = (READY, CONFIG_SYNCED, TOPICS_READY, WORKER_READY)


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
    *, failed: bool = False,
) -> str:
    if failed:
        return "Failed"
    if not (config.ok and topics.ok):
        return "Pending"
    if desired is DesiredState.PAUSED:
        return "Paused"
    if desired is DesiredState.STOPPED:
        return "Stopped"
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


def runtime_summary(
    positions: Mapping[str, int], realised: float, unrealised: float, net: float,
    updated_at: float,
) -> dict[str, Any]:
    """``status.runtime`` of a TradingStrategy from its portfolio read model."""
    summary: dict[str, Any] = {
        "positions": {s: int(q) for s, q in sorted(positions.items()) if q},
        "realisedPnl": round(realised, 2),
        "unrealisedPnl": round(unrealised, 2),
        "netPnl": round(net, 2),
    }
    if updated_at > 0:
        summary["lastHeartbeat"] = rfc3339(updated_at)
    return summary
