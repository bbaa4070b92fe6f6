"""The stream stages: thin I/O shells around the pure core (consume, compute, produce).

Importing this package is cheap; :mod:`alphaspt.workers.registry` wires the stages.
"""

STAGES = (
    "market-feed",
    "feature-engine",
    "strategy-runner",
    "risk-manager",
    "trading-engine",
    "portfolio-manager",
)
SHARED_STAGES = tuple(s for s in STAGES if s != "strategy-runner")
