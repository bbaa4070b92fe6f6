"""Users, strategy configurations and risk profiles.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(253), nullable=False, unique=True),
        sa.Column("email", sa.String(320)),
        sa.Column("role", sa.String(32), nullable=False, server_default="quant"),
        *_timestamps(),
    )
    op.create_table(
        "risk_profiles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("limits", postgresql.JSONB, nullable=False),
        sa.Column("kill_switch", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.UniqueConstraint("namespace", "name"),
    )
    op.create_table(
        "strategy_configurations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("strategy", sa.String(200), nullable=False),
        sa.Column("params", postgresql.JSONB, nullable=False),
        sa.Column("instruments", postgresql.JSONB, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("desired_state", sa.String(16), nullable=False),
        sa.Column("risk_profile_name", sa.String(63), nullable=False),
        sa.Column("spec", postgresql.JSONB, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.UniqueConstraint("namespace", "name"),
    )
    op.create_index("ix_strategy_configurations_risk_profile", "strategy_configurations",
                    ["namespace", "risk_profile_name"])


def downgrade() -> None:
    op.drop_table("strategy_configurations")
    op.drop_table("risk_profiles")
    op.drop_table("users")
