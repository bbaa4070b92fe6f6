"""In-memory stand-ins for the reconcilers' ports (no servers): an API server that stores
objects and bumps generations like the real one, a repository, topics and a control log,
each able to fail on demand."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from alphaspt.core.cache import StrategyView
from alphaspt.core.db.repository import RiskProfileRecord, StrategyRecord
from alphaspt.core.events import Control
from alphaspt.core.specs import API_VERSION, RiskProfileSpec, TradingStrategySpec
from alphaspt.exceptions import InfrastructureUnavailable
from alphaspt.operator.kube import Conflict
from alphaspt.operator.planning import TopicPlan
from alphaspt.operator.strategies import ReconcilerConfig

NS = "trading"


class FakeKube:
    """Custom objects and Deployments by (plural, name); counts every write."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self._uid = 0

    def add(self, plural: str, kind: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        self._uid += 1
        obj = {"apiVersion": API_VERSION, "kind": kind,
               "metadata": {"name": name, "namespace": NS, "uid": f"uid-{self._uid}",
                            "generation": 1},
               "spec": dict(spec)}
        self.objects[(plural, name)] = obj
        return obj

    def update_spec(self, plural: str, name: str, **changes: Any) -> None:
        obj = self.objects[(plural, name)]
        obj["spec"].update(changes)
        obj["metadata"]["generation"] += 1

    async def get_custom(self, namespace: str, plural: str, name: str
                         ) -> dict[str, Any] | None:
        found = self.objects.get((plural, name))
        return copy.deepcopy(found) if found else None

    async def list_custom(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (p, _), o in self.objects.items() if p == plural]

    async def patch_custom_status(self, namespace: str, plural: str, name: str,
                                  status: Mapping[str, Any]) -> dict[str, Any] | None:
        obj = self.objects.get((plural, name))
        if obj is None:
            return None
        self.writes.append(("status", plural, name))
        obj["status"] = _merge(obj.get("status") or {}, status)
        return copy.deepcopy(obj)

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get(("deployments", name))
        return copy.deepcopy(found) if found else None

    async def create_deployment(self, namespace: str, body: Mapping[str, Any]
                                ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if ("deployments", name) in self.objects:
            raise Conflict(f"{name} exists")
        self.writes.append(("create", "deployments", name))
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["generation"] = 1
        self.objects[("deployments", name)] = obj
        return copy.deepcopy(obj)

    async def patch_deployment(self, namespace: str, name: str, patch: Mapping[str, Any]
                               ) -> dict[str, Any] | None:
        obj = self.objects.get(("deployments", name))
        if obj is None:
            return None
        self.writes.append(("patch", "deployments", name))
        before = copy.deepcopy(obj["spec"])
        merged = _merge(obj, patch)
        if merged["spec"] != before:
            merged["metadata"]["generation"] = obj["metadata"]["generation"] + 1
        self.objects[("deployments", name)] = merged
        return copy.deepcopy(merged)

    async def delete_deployment(self, namespace: str, name: str) -> bool:
        self.writes.append(("delete", "deployments", name))
        return self.objects.pop(("deployments", name), None) is not None

    def add_secret(self, name: str, version: str = "1") -> None:
        self.objects[("secrets", name)] = {"metadata": {"name": name,
                                                        "resourceVersion": version}}

    async def get_secret_metadata(self, namespace: str, name: str
                                  ) -> dict[str, Any] | None:
        found = self.objects.get(("secrets", name))
        return copy.deepcopy(found) if found else None


def _merge(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeRepo:
    def __init__(self) -> None:
        self.strategies: dict[str, tuple[TradingStrategySpec, int]] = {}
        self.profiles: dict[str, tuple[RiskProfileSpec, int]] = {}
        self.archived: set[str] = set()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise InfrastructureUnavailable("PostgreSQL unavailable: connection refused")

    async def upsert_strategy(self, namespace: str, name: str, spec: TradingStrategySpec,
                              generation: int = 0, owner: str | None = None) -> bool:
        self._check()
        changed = self.strategies.get(name) != (spec, generation)
        self.strategies[name] = (spec, generation)
        return changed

    async def archive_strategy(self, namespace: str, name: str) -> bool:
        self._check()
        self.archived.add(name)
        return True

    async def upsert_risk_profile(self, namespace: str, name: str, spec: RiskProfileSpec,
                                  generation: int = 0) -> bool:
        self._check()
        changed = self.profiles.get(name) != (spec, generation)
        self.profiles[name] = (spec, generation)
        return changed

    async def archive_risk_profile(self, namespace: str, name: str) -> bool:
        self._check()
        self.archived.add(name)
        return True

    async def list_strategies(self, namespace: str | None = None, *,
                              include_archived: bool = False) -> list[StrategyRecord]:
        self._check()
        return [StrategyRecord(NS, n, spec, gen, "", n in self.archived)
                for n, (spec, gen) in sorted(self.strategies.items())
                if include_archived or n not in self.archived]

    async def list_risk_profiles(self, namespace: str | None = None
                                 ) -> list[RiskProfileRecord]:
        self._check()
        return [RiskProfileRecord(NS, n, spec, gen, "", False)
                for n, (spec, gen) in sorted(self.profiles.items()) if n not in self.archived]


class FakeTopics:
    def __init__(self) -> None:
        self.topics: dict[str, TopicPlan] = {}
        self.down = False

    async def ensure(self, topics: Iterable[TopicPlan], *, refresh: bool = False
                     ) -> tuple[str, ...]:
        if self.down:
            raise InfrastructureUnavailable("Kafka metadata request failed")
        created = tuple(t.name for t in topics if t.name not in self.topics)
        self.topics.update({t.name: t for t in topics})
        return created

    async def delete(self, names: Iterable[str]) -> tuple[str, ...]:
        if self.down:
            raise InfrastructureUnavailable("Kafka unavailable")
        return tuple(n for n in names if self.topics.pop(n, None) is not None)


class FakeControl:
    def __init__(self) -> None:
        self.sent: list[Control] = []
        self.down = False

    async def publish(self, event: Control) -> None:
        if self.down:
            raise InfrastructureUnavailable("1 messages undelivered")
        self.sent.append(event)


class FakeRuntime:
    def __init__(self) -> None:
        self.views: dict[str, StrategyView] = {}

    async def strategy(self, name: str) -> StrategyView | None:
        return self.views.get(name)


class FakeOutages:
    def __init__(self) -> None:
        self.down: dict[str, str] = {}

    def outages(self) -> Mapping[str, str]:
        return dict(self.down)


class RecordedEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def info(self, body: Mapping[str, Any], reason: str, message: str) -> None:
        self.events.append(("Normal", body["metadata"]["name"], reason, message))

    def warn(self, body: Mapping[str, Any], reason: str, message: str) -> None:
        self.events.append(("Warning", body["metadata"]["name"], reason, message))

    def reasons(self, kind: str | None = None) -> list[str]:
        return [r for k, _, r, _ in self.events if kind is None or k == kind]


@pytest.fixture
def config() -> ReconcilerConfig:
    return ReconcilerConfig(namespace=NS, worker_image="worker:1", retry_delay=0.1,
                            deletion_attempts=2, step_timeout=1.0)


def strategy_spec(**overrides: Any) -> dict[str, Any]:
    return {"strategy": "momentum", "instruments": ["INFY"], "riskProfileRef": "default",
            "mode": "Paper", "desiredState": "Running", **overrides}
