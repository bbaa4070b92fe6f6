"""Every error AlphasPT raises on purpose, grouped by what the caller should do about it.

- :class:`TemporaryFailure`: the world is not ready yet (a server is down, a dependency
  does not exist yet). Retry later; the operator maps it to ``kopf.TemporaryError``.
- :class:`PermanentFailure`: retrying the same input can never succeed (invalid spec,
  unknown strategy). Report it; the operator maps it to ``kopf.PermanentError``.
"""

from __future__ import annotations


class AlphasptError(Exception):
    """Base class. ``retry_after`` is ``None`` for errors that retrying cannot fix."""

    retry_after: float | None = None


class TemporaryFailure(AlphasptError):
    retry_after: float | None = 10.0

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after


class PermanentFailure(AlphasptError):
    retry_after = None


class InfrastructureUnavailable(TemporaryFailure):
    """Kafka, PostgreSQL, Redis or the Kubernetes API did not answer."""


class DependencyNotReady(TemporaryFailure):
    """Something this resource refers to does not exist yet (e.g. its RiskProfile)."""


class InvalidConfiguration(PermanentFailure):
    """A setting, a custom resource or a strategy's parameters cannot be used as given."""


class UnknownStrategy(InvalidConfiguration):
    """``spec.strategy`` names neither a built-in nor an importable ``module:Class``."""


class ServerStartError(AlphasptError):
    """An embedded server (PostgreSQL, Redis, Kafka) failed to start."""


class StateTooLarge(PermanentFailure):
    """A stage's state value outgrew its bound: a bug in that stage's bounds. The stage
    stops (and says which key) rather than write a record the broker would refuse."""
