"""Pure pre-trade risk: signal + state + RiskProfile limits → decision with a reason.

Imports nothing from Kafka, Redis, PostgreSQL or Kubernetes (import-linter enforces it).
"""

from alphaspt.risk.engine import (
    EXCHANGE_MAX_ORDERS_PER_SECOND,
    RiskEngine,
    RiskEngineConfig,
    check_limits,
)
from alphaspt.risk.state import PendingOrder, Position, RiskState, ist_day

__all__ = [
    "EXCHANGE_MAX_ORDERS_PER_SECOND",
    "PendingOrder",
    "Position",
    "RiskEngine",
    "RiskEngineConfig",
    "RiskState",
    "check_limits",
    "ist_day",
]
