"""Migrations on an empty embedded PostgreSQL, and the repository's idempotent upserts."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from alphaspt.core.db import ConfigRepository, create_engine, migrate
from alphaspt.core.specs import DesiredState, RiskProfileSpec, TradingStrategySpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def empty_db_url(postgres_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(postgres_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


async def test_migrations_apply_to_an_empty_database(empty_db_url: str) -> None:
    await migrate(empty_db_url)
    await migrate(empty_db_url)  # a second run is a no-op
    engine = create_async_engine(empty_db_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        version = (await conn.execute(text("select version_num from alembic_version"))).scalar()
    await engine.dispose()
    assert {"users", "strategy_configurations", "risk_profiles", "alembic_version"} <= tables
    assert version == "0001"


async def test_upserts_report_changes_and_archive(empty_db_url: str) -> None:
    await migrate(empty_db_url)
    repo = ConfigRepository(create_engine(empty_db_url))
    spec = TradingStrategySpec(strategy="momentum", instruments=("INFY",),
                               risk_profile_ref="default")
    try:
        assert await repo.upsert_risk_profile("ns", "default", RiskProfileSpec(), 1)
        assert not await repo.upsert_risk_profile("ns", "default", RiskProfileSpec(), 1)
        assert await repo.upsert_strategy("ns", "mom", spec, 1, owner="alice")
        assert not await repo.upsert_strategy("ns", "mom", spec, 1, owner="alice")
        paused = spec.model_copy(update={"desired_state": DesiredState.PAUSED})
        assert await repo.upsert_strategy("ns", "mom", paused, 2)
        record = await repo.get_strategy("ns", "mom")
        assert record is not None
        assert record.spec.desired_state is DesiredState.PAUSED and record.generation == 2
        assert [r.name for r in await repo.list_strategies("ns")] == ["mom"]
        assert await repo.archive_strategy("ns", "mom")
        assert not await repo.archive_strategy("ns", "mom")
        assert await repo.list_strategies("ns") == []
        archived = await repo.get_strategy("ns", "mom")
        assert archived is not None and archived.archived
        assert await repo.upsert_strategy("ns", "mom", spec, 3)  # re-created: un-archived
        assert [r.name for r in await repo.list_strategies("ns")] == ["mom"]
    finally:
        await repo.close()
