"""What the reconcilers need from the outside world, as protocols.

The production implementations are :class:`~alphaspt.operator.kube.KubeClient`,
:class:`~alphaspt.core.db.ConfigRepository`, :class:`~alphaspt.operator.topics.TopicManager`,
:class:`~alphaspt.operator.control.ControlPublisher`,
:class:`~alphaspt.core.cache.PortfolioCacheReader` and kopf's event posting; the unit tests
pass their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from alphaspt.core.cache import StrategyView
from alphaspt.core.db.repository import RiskProfileRecord, StrategyRecord
from alphaspt.core.events import Control
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.operator.planning import TopicPlan


class KubeApi(Protocol):
    async def get_custom(self, namespace: str, plural: str, name: str
                         ) -> dict[str, Any] | None: ...

    async def list_custom(self, namespace: str, plural: str) -> list[dict[str, Any]]: ...

    async def patch_custom_status(self, namespace: str, plural: str, name: str,
                                  status: Mapping[str, Any]) -> dict[str, Any] | None: ...

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_deployment(self, namespace: str, body: Mapping[str, Any]
                                ) -> dict[str, Any]: ...

    async def patch_deployment(self, namespace: str, name: str, patch: Mapping[str, Any]
                               ) -> dict[str, Any] | None: ...

    async def delete_deployment(self, namespace: str, name: str) -> bool: ...

    async def get_secret_metadata(self, namespace: str, name: str
                                  ) -> dict[str, Any] | None:
        """A Secret's metadata only (never its data); ``None`` if it does not exist."""
        ...


class ConfigStore(Protocol):
    async def upsert_strategy(self, namespace: str, name: str, spec: TradingStrategySpec,
                              generation: int = 0, owner: str | None = None) -> bool: ...

    async def archive_strategy(self, namespace: str, name: str) -> bool: ...

    async def upsert_risk_profile(self, namespace: str, name: str, spec: RiskProfileSpec,
                                  generation: int = 0) -> bool: ...

    async def archive_risk_profile(self, namespace: str, name: str) -> bool: ...

    async def list_strategies(self, namespace: str | None = None, *,
                              include_archived: bool = False) -> list[StrategyRecord]: ...

    async def list_risk_profiles(self, namespace: str | None = None
                                 ) -> list[RiskProfileRecord]: ...


class TopicEnsurer(Protocol):
    async def ensure(self, topics: Iterable[TopicPlan], *, refresh: bool = False
                     ) -> tuple[str, ...]: ...

    async def delete(self, names: Iterable[str]) -> tuple[str, ...]: ...


class ControlSink(Protocol):
    async def publish(self, event: Control) -> None: ...


class RuntimeSource(Protocol):
    async def strategy(self, name: str) -> StrategyView | None: ...


class OutageSource(Protocol):
    """What the operator's periodic probes currently find down."""

    def outages(self) -> Mapping[str, str]:
        """``{"PostgreSQL" | "Kafka": what failed}`` for each server that is down now."""
        ...


class EventSink(Protocol):
    """Kubernetes Events about a custom resource (``kubectl describe``)."""

    def info(self, body: Mapping[str, Any], reason: str, message: str) -> None: ...

    def warn(self, body: Mapping[str, Any], reason: str, message: str) -> None: ...
