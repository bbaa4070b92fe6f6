"""Reads and idempotent writes of configuration rows.

Writes are upserts keyed by (namespace, name) that report whether anything changed, so
the operator can reconcile as often as it likes and only announce real changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from alphaspt.core.db.models import RiskProfile, StrategyConfiguration, User
from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.exceptions import InfrastructureUnavailable


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def create_engine(url: str) -> AsyncEngine:
    return create_async_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


@dataclass(frozen=True)
class StrategyRecord:
    namespace: str
    name: str
    spec: TradingStrategySpec
    generation: int
    spec_hash: str
    archived: bool


@dataclass(frozen=True)
class RiskProfileRecord:
    namespace: str
    name: str
    spec: RiskProfileSpec
    generation: int
    spec_hash: str
    archived: bool


class ConfigRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def close(self) -> None:
        await self._engine.dispose()

    # -- strategies --------------------------------------------------------------------

    async def upsert_strategy(
        self, namespace: str, name: str, spec: TradingStrategySpec, generation: int = 0,
        owner: str | None = None,
    ) -> bool:
        """Insert or update (and un-archive) a strategy. Returns True when the row changed."""
        body = spec.model_dump(mode="json", by_alias=True)
        digest = spec_hash(body)
        values = {
            "namespace": namespace,
            "name": name,
            "strategy": spec.strategy,
            "params": spec.params,
            "instruments": list(spec.instruments),
            "mode": spec.mode.value,
            "desired_state": spec.desired_state.value,
            "risk_profile_name": spec.risk_profile_ref,
            "spec": body,
            "spec_hash": digest,
            "generation": generation,
        }
        async with self._guard(), self._sessions.begin() as session:
            if owner:
                values["owner_id"] = await self._user_id(session, owner)
            return await _upsert(session, StrategyConfiguration, values)

    async def archive_strategy(self, namespace: str, name: str) -> bool:
        async with self._guard(), self._sessions.begin() as session:
            result = await session.execute(
                update(StrategyConfiguration)
                .where(StrategyConfiguration.namespace == namespace,
                       StrategyConfiguration.name == name,
                       StrategyConfiguration.archived_at.is_(None))
                .values(archived_at=func.now(), desired_state="Stopped")
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get_strategy(self, namespace: str, name: str) -> StrategyRecord | None:
        async with self._guard(), self._sessions() as session:
            row = await session.scalar(
                select(StrategyConfiguration).where(
                    StrategyConfiguration.namespace == namespace,
                    StrategyConfiguration.name == name,
                )
            )
            return None if row is None else _strategy_record(row)

    async def list_strategies(self, namespace: str | None = None, *,
                              include_archived: bool = False) -> list[StrategyRecord]:
        query = select(StrategyConfiguration).order_by(StrategyConfiguration.name)
        if namespace is not None:
            query = query.where(StrategyConfiguration.namespace == namespace)
        if not include_archived:
            query = query.where(StrategyConfiguration.archived_at.is_(None))
        async with self._guard(), self._sessions() as session:
            return [_strategy_record(r) for r in await session.scalars(query)]

    # -- risk profiles -----------------------------------------------------------------

    async def upsert_risk_profile(
        self, namespace: str, name: str, spec: RiskProfileSpec, generation: int = 0
    ) -> bool:
        body = spec.model_dump(mode="json", by_alias=True)
        digest = spec_hash(body)
        values = {
            "namespace": namespace,
            "name": name,
            "limits": body,
            "kill_switch": spec.kill_switch,
            "spec_hash": digest,
            "generation": generation,
        }
        async with self._guard(), self._sessions.begin() as session:
            return await _upsert(session, RiskProfile, values)

    async def archive_risk_profile(self, namespace: str, name: str) -> bool:
        async with self._guard(), self._sessions.begin() as session:
            result = await session.execute(
                update(RiskProfile)
                .where(RiskProfile.namespace == namespace, RiskProfile.name == name,
                       RiskProfile.archived_at.is_(None))
                .values(archived_at=func.now())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def get_risk_profile(self, namespace: str, name: str) -> RiskProfileRecord | None:
        async with self._guard(), self._sessions() as session:
            row = await session.scalar(
                select(RiskProfile).where(RiskProfile.namespace == namespace,
                                          RiskProfile.name == name)
            )
            return None if row is None else _risk_record(row)

    async def list_risk_profiles(self, namespace: str | None = None) -> list[RiskProfileRecord]:
        query = select(RiskProfile).where(RiskProfile.archived_at.is_(None))
        if namespace is not None:
            query = query.where(RiskProfile.namespace == namespace)
        async with self._guard(), self._sessions() as session:
            return [_risk_record(r) for r in await session.scalars(query)]

    # -- helpers -----------------------------------------------------------------------

    async def _user_id(self, session: Any, username: str) -> int:
        stmt = insert(User).values(username=username).on_conflict_do_nothing()
        await session.execute(stmt)
        user_id: int = await session.scalar(select(User.id).where(User.username == username))
        return user_id

    def _guard(self) -> _DbGuard:
        return _DbGuard()


_Row = TypeVar("_Row", StrategyConfiguration, RiskProfile)


async def _upsert(session: AsyncSession, model: type[_Row], values: dict[str, Any]) -> bool:
    """Insert or update (and un-archive) the row of ``values``' (namespace, name); False,
    writing nothing, when the row already holds the same spec hash and generation."""
    current = await session.scalar(
        select(model).where(model.namespace == values["namespace"], model.name == values["name"])
    )
    if (current is not None and current.spec_hash == values["spec_hash"]
            and current.archived_at is None and current.generation == values["generation"]):
        return False
    stmt = insert(model).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["namespace", "name"],
        set_={**{k: stmt.excluded[k] for k in values if k not in ("namespace", "name")},
              "archived_at": None, "updated_at": func.now()},
    )
    await session.execute(stmt)
    return True


class _DbGuard:
    """Turns connection failures into :class:`InfrastructureUnavailable` (retry later)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OperationalError | OSError | ConnectionError) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            raise InfrastructureUnavailable(f"PostgreSQL unavailable: {exc}") from exc


def _strategy_record(row: StrategyConfiguration) -> StrategyRecord:
    return StrategyRecord(
        namespace=row.namespace,
        name=row.name,
        spec=TradingStrategySpec.model_validate(row.spec),
        generation=row.generation,
        spec_hash=row.spec_hash,
        archived=row.archived_at is not None,
    )


def _risk_record(row: RiskProfile) -> RiskProfileRecord:
    return RiskProfileRecord(
        namespace=row.namespace,
        name=row.name,
        spec=RiskProfileSpec.model_validate(row.limits),
        generation=row.generation,
        spec_hash=row.spec_hash,
        archived=row.archived_at is not None,
    )
