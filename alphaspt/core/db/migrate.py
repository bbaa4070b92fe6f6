"""Apply the Alembic migrations (``alembic upgrade head``) from code, on start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alphaspt.exceptions import InfrastructureUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def migrate(url: str) -> None:
    """Bring the database at ``url`` (``postgresql+asyncpg://``) to the latest revision."""
    engine = create_async_engine(url)
    cfg = alembic_config(url)

    def upgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
    except OSError as exc:
        raise InfrastructureUnavailable(f"PostgreSQL unreachable for migrations: {exc}") from exc
    finally:
        await engine.dispose()


def migrate_sync(url: str) -> None:
    asyncio.run(migrate(url))
