"""Pure pre-trade risk: signal + state + RiskProfile limits → decision with a reason.

Imports nothing from Kafka, Redis, PostgreSQL or Kubernetes (import-linter enforces it).
"""

from alphaspt.risk.engine import (
    EXCHANGE_MAX_ORDERS_PER_SECOND,
    KITE_MAX_ORDERS_PER_DAY,
    KITE_MAX_ORDERS_PER_MINUTE,
    RULES,
    Rejection,
    RiskEngine,
    RiskEngineConfig,
    RuleContext,
    check_limits,
)
from alphaspt.risk.state import PendingOrder, Position, RiskState, ist_day

__all__ = [
    "EXCHANGE_MAX_ORDERS_PER_SECOND",
    "KITE_MAX_ORDERS_PER_DAY",
    "KITE_MAX_ORDERS_PER_MINUTE",
    "RULES",
    "PendingOrder",
    "Position",
    "Rejection",
    "RiskEngine",
    "RiskEngineConfig",
    "RiskState",
    "RuleContext",
    "check_limits",
    "ist_day",
]
