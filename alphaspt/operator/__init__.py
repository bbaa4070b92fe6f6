"""The Kubernetes operator: TradingStrategy and RiskProfile custom resources in, rows,
topics, strategy-runner Deployments and status out.

- :mod:`~alphaspt.operator.planning`: the pure reconcile core (shared with ``alphaspt up``);
- :mod:`~alphaspt.operator.conditions`: status, conditions and phase (pure);
- :mod:`~alphaspt.operator.strategies`, :mod:`~alphaspt.operator.riskprofiles`: the
  reconcilers, behind the protocols of :mod:`~alphaspt.operator.ports`;
- :mod:`~alphaspt.operator.kube`, :mod:`~alphaspt.operator.topics`,
  :mod:`~alphaspt.operator.control`: the I/O adapters; :mod:`~alphaspt.operator.services`
  wires them once;
- :mod:`~alphaspt.operator.handlers`: thin kopf handlers; :mod:`~alphaspt.operator.main`:
  ``run(settings)``.
"""
