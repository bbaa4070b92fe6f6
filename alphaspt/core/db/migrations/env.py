"""Alembic environment: runs on the connection handed over by ``alphaspt.core.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from alphaspt.core.db.models import Base

target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through alphaspt.core.db.migrate(url)")
run(connection)
