"""The operator's shared clients, created once at start-up and wired in this one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alphaspt.core.cache import PortfolioCacheReader, StrategyView
from alphaspt.core.config import OperatorConfig, Settings
from alphaspt.core.db import ConfigRepository, create_engine, migrate
from alphaspt.core.specs import GROUP, VERSION
from alphaspt.core.streaming import EventProducer, admin_client
from alphaspt.core.streaming.admin import existing_partitions
from alphaspt.exceptions import (
    AlphasptError,
    DependencyNotReady,
    InfrastructureUnavailable,
    InvalidConfiguration,
)
from alphaspt.operator.control import ControlPublisher
from alphaspt.operator.kube import (
    RISK_PROFILES,
    TRADING_STRATEGIES,
    KubeClient,
    load_configuration,
)
from alphaspt.operator.outages import OutageMonitor
from alphaspt.operator.planning import PlanConfig
from alphaspt.operator.ports import EventSink
from alphaspt.operator.riskprofiles import RiskProfileReconciler
from alphaspt.operator.strategies import ReconcilerConfig, StrategyReconciler
from alphaspt.operator.topics import TopicManager

log = logging.getLogger(__name__)


class RedisRuntime:
    """The portfolio read model as a runtime source; Redis errors mean "unavailable"."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._reader = PortfolioCacheReader(client)

    async def strategy(self, name: str) -> StrategyView | None:
        try:
            return await self._reader.strategy(name)
        except RedisError as exc:
            raise InfrastructureUnavailable(f"Redis: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()


def reconciler_config(settings: Settings) -> ReconcilerConfig:
    op = settings.operator
    return ReconcilerConfig(
        namespace=settings.namespace,
        plan=PlanConfig(
            namespace=settings.namespace,
            partitions=settings.kafka.partitions,
            default_requests=dict(op.default_requests),
            default_limits=dict(op.default_limits),
        ),
        worker_image=op.worker_image,
        image_pull_policy=op.image_pull_policy,
        connection_secret=op.connection_secret,
        service_account=op.service_account,
        retry_delay=op.retry_delay,
        deletion_attempts=op.deletion_attempts,
        runtime_write_interval=op.runtime_write_interval,
    )


async def _require_crds(kube: KubeClient) -> None:
    """kopf serves the resources found when it starts (no cluster-wide CRD watch, so the
    operator needs no cluster role): wait here until both CRDs are served."""
    served = await kube.served_resources(f"{GROUP}/{VERSION}")
    missing = {TRADING_STRATEGIES, RISK_PROFILES} - served
    if missing:
        raise DependencyNotReady(
            f"CRDs not installed ({', '.join(sorted(missing))}.{GROUP} not served): "
            "kubectl apply -f crds/", retry_after=5.0)


def require_connections(settings: Settings) -> str:
    """The PostgreSQL URL, once both servers the operator cannot work without are set."""
    if settings.postgres.url is None:
        raise InvalidConfiguration("the operator needs ALPHASPT_POSTGRES__URL")
    if not settings.kafka.bootstrap_servers:
        raise InvalidConfiguration("the operator needs ALPHASPT_KAFKA__BOOTSTRAP_SERVERS")
    return settings.postgres.url.get_secret_value()


@dataclass
class Services:
    kube: KubeClient
    repo: ConfigRepository
    topics: TopicManager
    control: ControlPublisher
    runtime: RedisRuntime | None
    strategies: StrategyReconciler
    profiles: RiskProfileReconciler
    outages: OutageMonitor
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    @classmethod
    async def start(cls, settings: Settings, events: EventSink) -> Services:
        """Check the settings, migrate PostgreSQL, create every client (inside the loop)."""
        postgres_url = require_connections(settings)
        kube = KubeClient(load_configuration(settings.operator.kubeconfig))
        try:
            await _require_crds(kube)
            await migrate(postgres_url)
        except BaseException:
            await kube.close()
            raise
        config = reconciler_config(settings)
        repo = ConfigRepository(create_engine(postgres_url))
        admin = admin_client(settings.kafka)
        topics = TopicManager(admin,
                              replication_factor=settings.kafka.replication_factor)
        control = ControlPublisher(EventProducer(settings.kafka))
        runtime = None
        if settings.redis.url is not None:
            runtime = RedisRuntime(aioredis.Redis.from_url(
                settings.redis.url.get_secret_value(), decode_responses=True))
        else:
            log.warning("no ALPHASPT_REDIS__URL: status.runtime (live P&L) stays empty")
        namespace = settings.namespace
        outages = OutageMonitor({
            "PostgreSQL": lambda: repo.list_risk_profiles(namespace),
            "Kafka": lambda: asyncio.to_thread(existing_partitions, admin, 3.0),
        })
        profiles = RiskProfileReconciler(config, kube=kube, repo=repo, topics=topics,
                                         control=control, events=events)
        strategies = StrategyReconciler(config, kube=kube, repo=repo, topics=topics,
                                        control=control, runtime=runtime, events=events,
                                        on_binding=profiles.refresh_binding, outages=outages)
        profiles.on_change = strategies.reconcile_bound
        outages.on_change = strategies.reconcile_all
        return cls(kube, repo, topics, control, runtime, strategies, profiles, outages)

    def start_background(self, operator: OperatorConfig) -> None:
        """The row sweeper (archives rows whose resource is gone) and the outage probes."""
        sweep = operator.sweep_interval or operator.resync_interval
        self._tasks = [
            asyncio.create_task(self._sweep_forever(sweep), name="row sweeper"),
            asyncio.create_task(self.outages.run(operator.probe_interval),
                                name="outage probes"),
        ]

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.strategies.sweep()
                await self.profiles.sweep()
            except AlphasptError as exc:
                log.warning("sweeping orphaned rows: %s", exc)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.control.close()
        await self.repo.close()
        await self.kube.close()
        if self.runtime is not None:
            await self.runtime.close()
