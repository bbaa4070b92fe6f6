"""Status computations: WorkerReady from a Deployment, Ready, phase, minimal patches."""

from __future__ import annotations

from typing import Any

import pytest

from alphaspt.core.specs import DesiredState
from alphaspt.core.views import PositionView, StrategyView
from alphaspt.operator.conditions import (
    CONFIG_SYNCED,
    FALSE,
    TOPICS_READY,
    TRUE,
    WORKER_READY,
    Condition,
    merge_patch,
    ready_condition,
    render_conditions,
    runtime_summary,
    strategy_phase,
    worker_condition,
)


def deployment(generation: int = 2, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": status}


AVAILABLE = {"type": "Available", "status": "True"}


@pytest.mark.parametrize(("dep", "replicas", "status", "reason"), [
    (None, 1, FALSE, "DeploymentMissing"),
    (deployment(2, observedGeneration=1), 1, FALSE, "RolloutPending"),
    (deployment(2), 1, FALSE, "RolloutPending"),
    (deployment(2, observedGeneration=2, replicas=1, updatedReplicas=0), 1, FALSE,
     "RolloutInProgress"),
    (deployment(2, observedGeneration=2, replicas=2, updatedReplicas=1,
                availableReplicas=1), 1, FALSE, "RolloutInProgress"),
    (deployment(2, observedGeneration=2, replicas=1, updatedReplicas=1,
                availableReplicas=0), 1, FALSE, "WorkerUnavailable"),
    (deployment(2, observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=1,
                conditions=[{"type": "Available", "status": "False", "message": "crash"}]),
     1, FALSE, "WorkerUnavailable"),
    (deployment(2, observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=1,
                conditions=[{"type": "Progressing", "status": "False",
                             "reason": "ProgressDeadlineExceeded"}]),
     1, FALSE, "ProgressDeadlineExceeded"),
    (deployment(2, observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=1,
                conditions=[AVAILABLE]), 1, TRUE, "WorkerAvailable"),
    (deployment(2, observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=1),
     1, TRUE, "WorkerAvailable"),
    (deployment(3, observedGeneration=3, replicas=1), 0, FALSE, "ScalingDown"),
    (deployment(3, observedGeneration=3, conditions=[AVAILABLE]), 0, TRUE, "ScaledToZero"),
    (deployment(3, observedGeneration=2), 0, FALSE, "RolloutPending"),
])
def test_worker_condition(dep: dict[str, Any] | None, replicas: int, status: str,
                          reason: str) -> None:
    cond = worker_condition(dep, replicas)
    assert (cond.type, cond.status, cond.reason) == (WORKER_READY, status, reason)
    assert cond.message


def test_ready_needs_all_three() -> None:
    ok = [Condition(t, TRUE, "Ok") for t in (CONFIG_SYNCED, TOPICS_READY, WORKER_READY)]
    assert ready_condition(*ok).status == TRUE
    bad = [ok[0], Condition(TOPICS_READY, FALSE, "KafkaUnavailable", "down"), ok[2]]
    ready = ready_condition(*bad)
    assert (ready.status, ready.reason) == (FALSE, "KafkaUnavailable")
    assert "TopicsReady: down" in ready.message


@pytest.mark.parametrize(("desired", "config", "worker_reason", "worker_ok", "phase"), [
    (DesiredState.RUNNING, False, "DeploymentMissing", False, "Pending"),
    (DesiredState.RUNNING, True, "RolloutPending", False, "Starting"),
    (DesiredState.RUNNING, True, "WorkerUnavailable", False, "Degraded"),
    (DesiredState.RUNNING, True, "WorkerAvailable", True, "Running"),
    (DesiredState.PAUSED, True, "ScalingDown", False, "Paused"),
    (DesiredState.STOPPED, True, "ScaledToZero", True, "Stopped"),
])
def test_phase(desired: DesiredState, config: bool, worker_reason: str, worker_ok: bool,
               phase: str) -> None:
    c = Condition(CONFIG_SYNCED, TRUE if config else FALSE, "x")
    t = Condition(TOPICS_READY, TRUE, "x")
    w = Condition(WORKER_READY, TRUE if worker_ok else FALSE, worker_reason)
    assert strategy_phase(desired, c, t, w) == phase
    assert strategy_phase(desired, c, t, w, failed=True) == "Failed"


def test_transition_time_moves_only_with_the_status() -> None:
    first = render_conditions(None, [Condition("Ready", FALSE, "Starting", "a")], 1,
                              "2026-01-01T00:00:00Z")
    same = render_conditions(first, [Condition("Ready", FALSE, "Other", "b")], 2,
                             "2026-01-01T00:01:00Z")
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["reason"] == "Other" and same[0]["observedGeneration"] == 2
    flipped = render_conditions(same, [Condition("Ready", TRUE, "Ok")], 2,
                                "2026-01-01T00:02:00Z")
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:02:00Z"
    kept = render_conditions(flipped, [Condition("ConfigSynced", TRUE, "Ok")], 2, "later")
    assert [c["type"] for c in kept] == ["ConfigSynced", "Ready"]


def test_merge_patch_is_minimal_and_removes_map_keys() -> None:
    current = {"phase": "Running", "runtime": {"positions": {"INFY": 5, "TCS": 1},
                                               "netPnl": 1.0}, "other": 1}
    assert merge_patch(current, {"phase": "Running"}) == {}
    assert merge_patch(current, {"runtime": {"positions": {"INFY": 5}, "netPnl": 2.0}}) == {
        "runtime": {"positions": {"TCS": None}, "netPnl": 2.0}}
    assert merge_patch({}, {"conditions": [1]}) == {"conditions": [1]}


def _position(symbol: str, quantity: int) -> PositionView:
    return PositionView(symbol=symbol, quantity=quantity, avg_price=1.0, last_price=1.0,
                        realised_pnl=0.0, unrealised_pnl=0.0)


def test_runtime_summary_rounds_and_drops_flat_positions() -> None:
    view = StrategyView(name="s", positions=(_position("TCS", 0), _position("INFY", 10)),
                        realised_pnl=1.234, unrealised_pnl=-2.345, charges=0.456, net_pnl=3.0,
                        orders=4, fills=3, rejections=1, updated_at=1767225600.0)
    assert runtime_summary(view) == {
        "positions": {"INFY": 10}, "realisedPnl": 1.23, "unrealisedPnl": -2.35,
        "charges": 0.46, "netPnl": 3.0, "orders": 4, "fills": 3, "rejections": 1,
        "lastHeartbeat": "2026-01-01T00:00:00Z"}
    assert "lastHeartbeat" not in runtime_summary(StrategyView(name="s"))


def test_phase_shows_the_kill_switch_and_outages_apart_from_not_running() -> None:
    ok = Condition("X", TRUE, "Ok")
    db_down = Condition("ConfigSynced", FALSE, "DatabaseUnavailable", "PostgreSQL down")
    missing = Condition("ConfigSynced", FALSE, "RiskProfileNotFound")
    running = DesiredState.RUNNING
    assert strategy_phase(running, ok, ok, ok, halted=True) == "Halted"
    assert strategy_phase(DesiredState.PAUSED, ok, ok, ok, halted=True) == "Paused"
    assert strategy_phase(running, db_down, ok, ok) == "Running"  # the worker still runs
    assert strategy_phase(running, missing, ok, ok) == "Pending"
    unseen = Condition("WorkerReady", "Unknown", "NotObserved")
    assert strategy_phase(running, db_down, ok, unseen) == "Pending"
