"""The reconcilers against in-memory ports: idempotence, failures, deletion under outage."""

from __future__ import annotations

from typing import Any

import pytest

from alphaspt.core.cache import PositionView, StrategyView
from alphaspt.core.events import Command
from alphaspt.exceptions import DependencyNotReady, InfrastructureUnavailable, InvalidConfiguration
from alphaspt.operator.conditions import find
from alphaspt.operator.riskprofiles import RiskProfileReconciler
from alphaspt.operator.strategies import ReconcilerConfig, StrategyReconciler, contains
from tests.unit.operator.conftest import (
    FakeControl,
    FakeKube,
    FakeOutages,
    FakeRepo,
    FakeRuntime,
    FakeTopics,
    RecordedEvents,
    strategy_spec,
)

TS, RP = "tradingstrategies", "riskprofiles"


class World:
    def __init__(self, config: ReconcilerConfig) -> None:
        self.kube = FakeKube()
        self.repo = FakeRepo()
        self.topics = FakeTopics()
        self.control = FakeControl()
        self.runtime = FakeRuntime()
        self.events = RecordedEvents()
        self.outages = FakeOutages()
        self.now = 1767225600.0
        self.profiles = RiskProfileReconciler(
            config, kube=self.kube, repo=self.repo, topics=self.topics, control=self.control,
            events=self.events, clock=lambda: 1767225600.0)
        self.strategies = StrategyReconciler(
            config, kube=self.kube, repo=self.repo, topics=self.topics, control=self.control,
            runtime=self.runtime, events=self.events, on_binding=self.profiles.refresh_binding,
            outages=self.outages, clock=lambda: self.now)
        self.profiles.on_change = self.strategies.reconcile_bound

    def ts(self, name: str) -> dict[str, Any]:
        return self.kube.objects[(TS, name)]

    def cond(self, name: str, type_: str, plural: str = TS) -> dict[str, Any]:
        found = find((self.kube.objects[(plural, name)].get("status") or {}).get("conditions"),
                     type_)
        return dict(found or {})


@pytest.fixture
def world(config: ReconcilerConfig) -> World:
    w = World(config)
    w.kube.add(RP, "RiskProfile", "default", {"maxOrderQuantity": 10})
    return w


async def test_reconcile_creates_everything_once(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    await world.strategies.reconcile("mom")
    dep = world.kube.objects[("deployments", "strategy-mom")]
    assert dep["metadata"]["ownerReferences"][0]["uid"] == world.ts("mom")["metadata"]["uid"]
    assert world.repo.strategies["mom"][1] == 1
    assert "strategy.mom.state" in world.topics.topics and "market.ticks" in world.topics.topics
    status = world.ts("mom")["status"]
    assert status["observedGeneration"] == 1 and status["phase"] == "Starting"
    assert status["workerDeployment"] == "strategy-mom"
    assert world.cond("mom", "ConfigSynced")["status"] == "True"
    assert world.cond("mom", "WorkerReady")["reason"] == "RolloutPending"
    assert world.kube.objects[(RP, "default")]["status"]["boundStrategies"] == ["mom"]
    assert {"DeploymentCreated", "ConfigSynced", "TopicsCreated"} <= set(world.events.reasons())

    writes = len(world.kube.writes)
    await world.strategies.reconcile("mom")
    assert len(world.kube.writes) == writes, world.kube.writes[writes:]  # nothing changed


async def test_update_patches_the_deployment_and_pause_scales_down(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    await world.strategies.reconcile("mom")
    old = world.kube.objects[("deployments", "strategy-mom")]
    old_hash = old["spec"]["template"]["metadata"]["annotations"]["alphaspt.io/config-hash"]

    world.kube.update_spec(TS, "mom", params={"quantity": 3})
    await world.strategies.reconcile("mom")
    dep = world.kube.objects[("deployments", "strategy-mom")]
    assert dep["spec"]["template"]["metadata"]["annotations"][
        "alphaspt.io/config-hash"] != old_hash
    assert world.repo.strategies["mom"] == (world.repo.strategies["mom"][0], 2)
    assert world.ts("mom")["status"]["observedGeneration"] == 2

    world.kube.update_spec(TS, "mom", desiredState="Paused")
    await world.strategies.announce_state(world.ts("mom"), "Running", "Paused")
    await world.strategies.reconcile("mom")
    assert world.kube.objects[("deployments", "strategy-mom")]["spec"]["replicas"] == 0
    assert [c.command for c in world.control.sent] == [Command.PAUSE]
    assert world.ts("mom")["status"]["phase"] == "Paused"


@pytest.mark.parametrize(("old", "new", "command"), [
    (None, "Running", None), (None, "Paused", Command.PAUSE), ("Running", "Stopped",
                                                               Command.PAUSE),
    ("Paused", "Running", Command.RESUME), ("Stopped", "Running", Command.RESUME),
    ("Paused", "Stopped", Command.PAUSE),
])
async def test_state_announcements(world: World, old: str | None, new: str,
                                   command: Command | None) -> None:
    obj = world.kube.add(TS, "TradingStrategy", "mom", strategy_spec(desiredState=new))
    await world.strategies.announce_state(obj, old, new)
    assert [c.command for c in world.control.sent] == ([command] if command else [])
    if command:
        assert world.control.sent[0].target == "mom"


async def test_missing_profile_and_unavailable_servers_are_reported(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec(riskProfileRef="nope"))
    with pytest.raises(DependencyNotReady):
        await world.strategies.reconcile("mom")
    assert world.cond("mom", "ConfigSynced")["reason"] == "RiskProfileNotFound"
    assert ("deployments", "strategy-mom") not in world.kube.objects

    world.kube.update_spec(TS, "mom", riskProfileRef="default")
    world.repo.down = True
    with pytest.raises(InfrastructureUnavailable):
        await world.strategies.reconcile("mom")
    assert world.cond("mom", "ConfigSynced")["reason"] == "DatabaseUnavailable"
    assert world.cond("mom", "Ready")["status"] == "False"

    world.repo.down = False
    world.topics.down = True
    with pytest.raises(InfrastructureUnavailable):
        await world.strategies.reconcile("mom")
    assert world.cond("mom", "ConfigSynced")["status"] == "True"
    assert world.cond("mom", "TopicsReady")["reason"] == "KafkaUnavailable"
    assert world.ts("mom")["status"]["phase"] == "Pending"
    assert world.events.reasons("Warning") == [
        "RiskProfileNotFound", "DatabaseUnavailable", "KafkaUnavailable"]


async def test_worker_events_wait_for_a_full_reconcile(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    await world.strategies.reconcile("mom", full=False)
    assert ("deployments", "strategy-mom") not in world.kube.objects
    await world.strategies.reconcile("mom")
    del world.kube.objects[("deployments", "strategy-mom")]
    await world.strategies.reconcile("mom", full=False)  # a DELETED event: recreated
    assert ("deployments", "strategy-mom") in world.kube.objects


async def test_foreign_deployment_is_not_taken_over(world: World) -> None:
    world.kube.objects[("deployments", "strategy-mom")] = {
        "metadata": {"name": "strategy-mom", "generation": 1, "labels": {}}, "spec": {}}
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    with pytest.raises(InvalidConfiguration, match="not managed by alphaspt"):
        await world.strategies.reconcile("mom")


async def test_invalid_spec_fails_permanently(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom",
                   strategy_spec(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}))
    with pytest.raises(InvalidConfiguration):
        await world.strategies.reconcile("mom")
    assert world.ts("mom")["status"]["phase"] == "Failed"
    assert world.cond("mom", "ConfigSynced")["reason"] == "InvalidSpec"


async def test_deletion_completes_when_postgres_and_kafka_are_down(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec(deleteTopicsOnDelete=True))
    await world.strategies.reconcile("mom")
    world.repo.down = world.topics.down = world.control.down = True
    body = world.ts("mom")
    with pytest.raises(InfrastructureUnavailable, match="attempt 1/2"):
        await world.strategies.finalize(body)
    assert ("deployments", "strategy-mom") not in world.kube.objects  # stopped regardless
    await world.strategies.finalize(body)  # the last attempt gives up: deletion proceeds
    warning = [e for e in world.events.events if e[2] == "CleanupIncomplete"]
    assert warning and "row not archived" in warning[0][3] and "not deleted" in warning[0][3]
    assert "mom" not in world.repo.archived


async def test_sweep_archives_rows_whose_resource_is_gone(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    world.kube.add(TS, "TradingStrategy", "keep", strategy_spec())
    await world.strategies.reconcile("mom")
    await world.strategies.reconcile("keep")
    await world.profiles.reconcile("default")
    world.repo.down = True
    with pytest.raises(InfrastructureUnavailable):
        await world.strategies.finalize(world.ts("mom"))
    await world.strategies.finalize(world.ts("mom"))  # the second attempt gives up
    del world.kube.objects[(TS, "mom")]  # the finalizer is gone: so is the resource
    assert "mom" not in world.repo.archived
    world.repo.down = False
    assert await world.strategies.sweep() == ["mom"]
    assert world.repo.archived == {"mom"}
    assert await world.strategies.sweep() == []
    assert await world.profiles.sweep() == []
    del world.kube.objects[(RP, "default")]
    assert await world.profiles.sweep() == ["default"]


async def test_deletion_archives_and_keeps_topics(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    await world.strategies.reconcile("mom")
    await world.strategies.finalize(world.ts("mom"))
    assert "mom" in world.repo.archived
    assert "strategy.mom.state" in world.topics.topics
    assert world.control.sent[-1].command is Command.PAUSE
    assert "Finalized" in world.events.reasons()


async def test_runtime_summary_is_written_when_it_changes(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    await world.strategies.refresh_runtime("mom")
    assert "runtime" not in (world.ts("mom").get("status") or {})
    world.runtime.views["mom"] = StrategyView(
        name="mom", positions=(PositionView(symbol="INFY", quantity=3, avg_price=1.0,
                                            last_price=2.0, realised_pnl=0.0,
                                            unrealised_pnl=3.0),),
        realised_pnl=1.0, unrealised_pnl=3.0, net_pnl=4.0, updated_at=1767225600.0)
    await world.strategies.refresh_runtime("mom")
    assert world.ts("mom")["status"]["runtime"]["positions"] == {"INFY": 3}
    writes = len(world.kube.writes)
    await world.strategies.refresh_runtime("mom")
    assert len(world.kube.writes) == writes


async def test_risk_profile_announces_once_and_blocks_deletion(world: World) -> None:
    await world.profiles.reconcile("default")
    await world.profiles.reconcile("default")
    assert [c.command for c in world.control.sent] == [Command.CONFIG_CHANGED]
    assert world.repo.profiles["default"][0].max_order_quantity == 10
    assert world.cond("default", "Ready", RP)["status"] == "True"

    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    with pytest.raises(DependencyNotReady, match="mom"):
        await world.profiles.finalize(world.kube.objects[(RP, "default")])
    assert "DeletionBlocked" in world.events.reasons("Warning")
    del world.kube.objects[(TS, "mom")]
    await world.profiles.finalize(world.kube.objects[(RP, "default")])
    assert "default" in world.repo.archived


async def test_config_changed_is_retried_until_it_is_published(world: World) -> None:
    world.control.down = True
    with pytest.raises(InfrastructureUnavailable):
        await world.profiles.reconcile("default")
    assert world.cond("default", "ConfigSynced", RP)["reason"] == "KafkaUnavailable"
    world.control.down = False
    await world.profiles.reconcile("default")  # the row did not change, the notice is due
    assert [c.command for c in world.control.sent] == [Command.CONFIG_CHANGED]


async def test_kill_switch(world: World) -> None:
    obj = world.kube.objects[(RP, "default")]
    await world.profiles.kill_switch(obj, True)
    (event,) = world.control.sent
    assert (event.command, event.target_kind, event.target, event.value) == (
        Command.KILL_SWITCH, "RiskProfile", "default", True)
    assert "KillSwitchEngaged" in world.events.reasons("Warning")


def test_contains_compares_what_we_set() -> None:
    desired = {"spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "a", "env": [{"name": "X", "value": "1"}],
         "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}}}]}}}}
    stored: dict[str, Any] = {"spec": {
        "replicas": 1, "progressDeadlineSeconds": 600, "template": {"spec": {
        "dnsPolicy": "ClusterFirst", "containers": [
            {"name": "a", "env": [{"name": "X", "value": "1"}], "terminationMessagePath": "/x",
             "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]}}}}
    assert contains(stored, desired)
    stored["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "Y"})
    assert not contains(stored, desired)
    assert not contains({"spec": {"replicas": 0}}, {"spec": {"replicas": 1}})


def _view(name: str, net: float, updated_at: float, **counts: int) -> StrategyView:
    return StrategyView(name=name, realised_pnl=net, net_pnl=net, charges=1.5,
                        updated_at=updated_at, **counts)


async def test_a_strategy_the_runner_would_refuse_gets_no_deployment(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "typo", strategy_spec(params={"fast": 5}))
    with pytest.raises(InvalidConfiguration, match="fast"):
        await world.strategies.reconcile("typo")
    assert ("deployments", "strategy-typo") not in world.kube.objects
    assert "typo" not in world.repo.strategies
    ready = world.cond("typo", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidStrategy")
    assert "fast" in ready["message"] and world.ts("typo")["status"]["phase"] == "Failed"
    with pytest.raises(InvalidConfiguration):  # a resync: no second Warning
        await world.strategies.reconcile("typo")
    assert world.events.reasons("Warning").count("InvalidStrategy") == 1

    world.kube.add(TS, "TradingStrategy", "ghost", strategy_spec(strategy="nosuch"))
    with pytest.raises(InvalidConfiguration, match="unknown strategy"):
        await world.strategies.reconcile("ghost")
    assert world.cond("ghost", "Ready")["reason"] == "InvalidStrategy"

    world.kube.update_spec(TS, "typo", params={"quantity": 5})  # fixed
    await world.strategies.reconcile("typo")
    assert ("deployments", "strategy-typo") in world.kube.objects
    assert world.cond("typo", "ConfigSynced")["status"] == "True"


async def test_live_strategy_needs_its_broker_secret_and_mounts_only_it(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "live", strategy_spec(
        mode="Live", brokerSecretRef={"name": "kite-live"}))
    with pytest.raises(DependencyNotReady, match="kite-live"):
        await world.strategies.reconcile("live")
    assert world.cond("live", "Ready")["reason"] == "BrokerSecretMissing"
    assert ("deployments", "strategy-live") not in world.kube.objects
    world.kube.add_secret("kite-live", version="7")
    await world.strategies.reconcile("live")
    dep = world.kube.objects[("deployments", "strategy-live")]
    template = dep["spec"]["template"]
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
    assert refs == {"alphaspt-connections", "kite-live"}
    assert env["ALPHASPT_KITE__API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "kite-live", "key": "api_key", "optional": False}
    assert env["ALPHASPT_KITE__ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == (
        "access_token")
    assert template["metadata"]["annotations"]["alphaspt.io/broker-secret-version"] == "7"
    world.kube.add(TS, "TradingStrategy", "paper", strategy_spec())
    await world.strategies.reconcile("paper")
    paper_env = world.kube.objects[("deployments", "strategy-paper")]["spec"]["template"][
        "spec"]["containers"][0]["env"]
    assert not [e for e in paper_env if e["name"].startswith("ALPHASPT_KITE__")]


async def test_kill_switch_halts_the_bound_strategies(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    world.kube.add(TS, "TradingStrategy", "other", strategy_spec(riskProfileRef="second"))
    world.kube.add(RP, "RiskProfile", "second", {})
    await world.strategies.reconcile("mom")
    await world.strategies.reconcile("other")
    assert world.cond("mom", "Halted")["status"] == "False"
    world.kube.objects[(RP, "default")]["spec"]["killSwitch"] = True
    await world.profiles.kill_switch(world.kube.objects[(RP, "default")], True)
    halted = world.cond("mom", "Halted")
    assert (halted["status"], halted["reason"]) == ("True", "KillSwitch")
    assert "default" in halted["message"] and world.ts("mom")["status"]["phase"] == "Halted"
    assert world.cond("other", "Halted")["status"] == "False"


async def test_deleting_a_used_profile_is_blocked_visibly_once(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    await world.strategies.reconcile("mom")
    profile = world.kube.objects[(RP, "default")]
    profile["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    for _ in range(3):  # kopf's retries
        with pytest.raises(DependencyNotReady, match="mom"):
            await world.profiles.finalize(profile)
    assert world.events.reasons("Warning").count("DeletionBlocked") == 1
    ready = world.cond("default", "Ready", RP)
    assert (ready["status"], ready["reason"]) == ("False", "DeletionBlocked")
    assert "mom" in ready["message"]

    world.kube.add(TS, "TradingStrategy", "late", strategy_spec())
    with pytest.raises(DependencyNotReady, match="being deleted"):
        await world.strategies.reconcile("late")
    assert world.cond("late", "ConfigSynced")["reason"] == "RiskProfileTerminating"
    assert ("deployments", "strategy-late") not in world.kube.objects
    # the late one does not block; a terminating strategy does not count
    world.ts("mom")["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    assert await world.profiles.bound_strategies("default", profile) == []
    await world.profiles.finalize(profile)
    assert "default" in world.repo.archived


async def test_outages_fail_fast_with_their_own_reason(world: World) -> None:
    world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    await world.strategies.reconcile("mom")
    world.outages.down["PostgreSQL"] = "connection refused"
    with pytest.raises(InfrastructureUnavailable):
        await world.strategies.reconcile("mom")
    ready = world.cond("mom", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DatabaseUnavailable")
    assert world.ts("mom")["status"]["phase"] == "Starting"  # the worker's, not Pending
    world.outages.down = {"Kafka": "broker down"}
    with pytest.raises(InfrastructureUnavailable):
        await world.strategies.reconcile("mom")
    assert world.cond("mom", "Ready")["reason"] == "KafkaUnavailable"
    world.outages.down = {}
    await world.strategies.reconcile("mom")
    assert world.cond("mom", "Ready")["reason"] == "RolloutPending"


async def test_pause_annotation_stops_reconciling(world: World) -> None:
    obj = world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    obj["metadata"]["annotations"] = {"alphaspt.io/pause-reconciliation": "true"}
    await world.strategies.reconcile("mom")
    assert ("deployments", "strategy-mom") not in world.kube.objects
    assert "mom" not in world.repo.strategies
    assert world.cond("mom", "ReconciliationPaused")["status"] == "True"
    writes = len(world.kube.writes)
    await world.strategies.reconcile("mom")
    assert len(world.kube.writes) == writes
    obj["metadata"]["annotations"] = {}
    await world.strategies.reconcile("mom")
    assert ("deployments", "strategy-mom") in world.kube.objects
    assert world.cond("mom", "ReconciliationPaused") == {}


async def test_runtime_writes_are_rate_limited_and_ignore_older_namesakes(world: World
                                                                          ) -> None:
    obj = world.kube.add(TS, "TradingStrategy", "mom", strategy_spec())
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"  # == world.now
    world.runtime.views["mom"] = _view("mom", 99.0, world.now - 60)  # a deleted namesake's
    await world.strategies.refresh_runtime("mom")
    assert "runtime" not in (world.ts("mom").get("status") or {})

    world.runtime.views["mom"] = _view("mom", 1.0, world.now + 1, orders=2, fills=1)
    await world.strategies.refresh_runtime("mom")
    runtime = world.ts("mom")["status"]["runtime"]
    assert (runtime["netPnl"], runtime["charges"], runtime["orders"], runtime["fills"],
            runtime["rejections"]) == (1.0, 1.5, 2, 1, 0)
    writes = len(world.kube.writes)
    world.now += 10
    world.runtime.views["mom"] = _view("mom", 2.0, world.now, orders=3, fills=2)
    await world.strategies.refresh_runtime("mom")  # changed, but within 30 s
    assert len(world.kube.writes) == writes
    world.now += 25
    world.runtime.views["mom"] = _view("mom", 2.0, world.now, orders=3, fills=2)  # heartbeat
    await world.strategies.refresh_runtime("mom")
    assert world.ts("mom")["status"]["runtime"]["netPnl"] == 2.0 and len(
        world.kube.writes) == writes + 1
    world.now += 60
    world.runtime.views["mom"] = _view("mom", 2.0, world.now, orders=3, fills=2)
    await world.strategies.refresh_runtime("mom")  # only the heartbeat moved: no write
    assert len(world.kube.writes) == writes + 1


async def test_a_strategy_only_its_own_image_can_import_is_left_to_its_runner(
    world: World,
) -> None:
    ref = "private_strategies.alpha:Alpha"
    world.kube.add(TS, "TradingStrategy", "own", strategy_spec(strategy=ref,
                                                               image="registry/own:1"))
    await world.strategies.reconcile("own")
    assert ("deployments", "strategy-own") in world.kube.objects
    world.kube.add(TS, "TradingStrategy", "default-image", strategy_spec(strategy=ref))
    with pytest.raises(InvalidConfiguration, match="cannot import"):
        await world.strategies.reconcile("default-image")
    assert world.cond("default-image", "Ready")["reason"] == "InvalidStrategy"


def test_the_examples_pass_the_operators_strategy_check() -> None:
    from pathlib import Path

    import yaml

    from alphaspt.core.specs import TradingStrategySpec
    from alphaspt.operator.validation import check_strategy

    examples = Path(__file__).resolve().parents[3] / "examples"
    checked = 0
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "TradingStrategy":
                check_strategy(doc["metadata"]["name"],
                               TradingStrategySpec.model_validate(doc["spec"]))
                checked += 1
    assert checked >= 2
