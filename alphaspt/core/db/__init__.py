"""PostgreSQL: models, Alembic migrations applied on start-up, and the config repository."""

from alphaspt.core.db.migrate import migrate
from alphaspt.core.db.models import Base, RiskProfile, StrategyConfiguration, User
from alphaspt.core.db.repository import ConfigRepository, create_engine

__all__ = [
    "Base",
    "ConfigRepository",
    "RiskProfile",
    "StrategyConfiguration",
    "User",
    "create_engine",
    "migrate",
]
