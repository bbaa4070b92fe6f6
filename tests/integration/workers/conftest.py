"""Stages run in-process against the session's real servers, one namespace per test."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from alphaspt.core.config import KafkaConfig, MarketConfig, PostgresConfig, Settings
from alphaspt.core.db import ConfigRepository, create_engine, migrate
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.core.streaming import StreamProcessor, TopicSpec, admin_client, ensure_topics
from alphaspt.operator.planning import shared_topics


@pytest.fixture
def settings(kafka: KafkaConfig, postgres_url: str) -> Settings:
    ensure_topics(admin_client(kafka),
                  [TopicSpec(t.name, 1, dict(t.config)) for t in shared_topics(1)])
    # Wall-clock tests of the stages' plumbing run at any hour: no trading calendar.
    return Settings(namespace=f"w{uuid.uuid4().hex[:8]}", kafka=kafka,
                    postgres=PostgresConfig(url=SecretStr(postgres_url)),
                    market=MarketConfig(calendar=None))


@pytest.fixture
def configure(settings: Settings, postgres_url: str) -> Callable[..., None]:
    def apply(strategies: dict[str, TradingStrategySpec],
              profiles: dict[str, RiskProfileSpec]) -> None:
        async def go() -> None:
            await migrate(postgres_url)
            repo = ConfigRepository(create_engine(postgres_url))
            try:
                for name, p in profiles.items():
                    await repo.upsert_risk_profile(settings.namespace, name, p)
                for name, s in strategies.items():
                    await repo.upsert_strategy(settings.namespace, name, s)
            finally:
                await repo.close()
        asyncio.run(go())
    return apply


@pytest.fixture
def run_stage() -> Iterator[Callable[[StreamProcessor], threading.Thread]]:
    running: list[tuple[StreamProcessor, threading.Thread]] = []

    def start(stage: StreamProcessor) -> threading.Thread:
        thread = threading.Thread(target=stage.run, daemon=True)
        thread.start()
        running.append((stage, thread))
        return thread

    yield start
    for stage, thread in running:
        stage.stop()
        thread.join(30)
        assert not thread.is_alive(), f"{stage.stage} did not stop"

