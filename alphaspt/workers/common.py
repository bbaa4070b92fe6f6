"""What every worker shares: logging, its configuration from PostgreSQL, the stage base.

Workers are thin I/O shells: consume, call the pure core, produce. Each ``main`` is
wired in one place (``alphaspt/workers/__init__.py``'s registry) from the frozen settings.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alphaspt.core.config import Settings
from alphaspt.core.db import ConfigRepository, create_engine
from alphaspt.core.db.repository import RiskProfileRecord, StrategyRecord
from alphaspt.core.events import Codec, Command, Control, Event, Topics
from alphaspt.core.streaming import Output, ProcessorConfig, StreamProcessor
from alphaspt.exceptions import InvalidConfiguration

log = logging.getLogger(__name__)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


@dataclass(frozen=True)
class PipelineConfig:
    """What the shared stages know of the configured strategies (read from PostgreSQL)."""

    strategies: Mapping[str, StrategyRecord] = field(default_factory=dict)
    profiles: Mapping[str, RiskProfileRecord] = field(default_factory=dict)

    @property
    def instruments(self) -> set[str]:
        return {s for rec in self.strategies.values() for s in rec.spec.instruments}


class ConfigSource:
    """Loads the pipeline configuration of one namespace from PostgreSQL."""

    def __init__(self, database_url: str, namespace: str) -> None:
        self.database_url = database_url
        self.namespace = namespace

    def load(self) -> PipelineConfig:
        return asyncio.run(self._load())

    async def _load(self) -> PipelineConfig:
        repo = ConfigRepository(create_engine(self.database_url))
        try:
            strategies = await repo.list_strategies(self.namespace)
            profiles = await repo.list_risk_profiles(self.namespace)
        finally:
            await repo.close()
        return PipelineConfig(
            strategies={s.name: s for s in strategies},
            profiles={p.name: p for p in profiles},
        )

    def strategy(self, name: str) -> StrategyRecord:
        record = self.load().strategies.get(name)
        if record is None:
            raise InvalidConfiguration(
                f"strategy {name!r} has no active configuration in namespace "
                f"{self.namespace!r}; apply its TradingStrategy first"
            )
        return record


def require_database(settings: Settings) -> str:
    if settings.postgres.url is None:
        raise InvalidConfiguration(
            "ALPHASPT_POSTGRES__URL is not set; workers read their configuration from "
            "PostgreSQL (alphaspt up sets it for you)"
        )
    return settings.postgres.url.get_secret_value()


def require_kafka(settings: Settings) -> None:
    if not settings.kafka.bootstrap_servers:
        raise InvalidConfiguration(
            "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS is not set (alphaspt up sets it for you)"
        )


WALL_CLOCK_LEAD_S = 300.0
"""On the wall clock, how far ahead of it an input may be stamped (exchange clocks and
ours differ by seconds; Kite stamps ticks at the exchange, never minutes ahead)."""


def stage_config(settings: Settings, stage: str, **overrides: Any) -> ProcessorConfig:
    """One consumer group per stage; state in the stage's changelog topic; on the wall
    clock, inputs from the future dead-lettered (``ProcessorConfig.max_lead_s``)."""
    values: dict[str, Any] = {
        "group_id": f"alphaspt-{settings.namespace}-{stage}",
        "changelog_topic": Topics.changelog(stage, settings.namespace),
        "max_lead_s": WALL_CLOCK_LEAD_S if settings.clock == "wall" else None,
    }
    values.update(overrides)
    return ProcessorConfig(**values)


class ConfiguredStage(StreamProcessor):
    """A stage that follows configuration changes announced on ``control.commands``."""

    def __init__(self, settings: Settings, config: ProcessorConfig,
                 inputs: Mapping[str, Codec[Any]], source: ConfigSource) -> None:
        super().__init__(settings.kafka, config, {**inputs, Topics.CONTROL: Codec(Control)})
        self.source = source
        self.pipeline = source.load()

    def process(self, topic: str, event: Event) -> Iterable[Output]:
        if topic == Topics.CONTROL:
            assert isinstance(event, Control)
            if event.command is Command.CONFIG_CHANGED:
                self.pipeline = self.source.load()
                log.info("%s: configuration reloaded (%d strategies)", self.stage,
                         len(self.pipeline.strategies))
            return self.on_control(event)
        return self.on_event(topic, event)

    def on_control(self, control: Control) -> Iterable[Output]:
        return ()

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        raise NotImplementedError
