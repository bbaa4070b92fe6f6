"""kopf handlers: thin. Each takes what kopf hands it and calls a reconciler.

Registered on a private registry by :func:`make_registry` (nothing at import time), run by
:mod:`alphaspt.operator.main` with the ``all_at_once`` lifecycle, in registration order:
the kill switch and PAUSE notices go first, before anything slower. Our errors map to
kopf's: :class:`~alphaspt.exceptions.TemporaryFailure` → ``kopf.TemporaryError`` (retried
after ``retry_after``), :class:`~alphaspt.exceptions.PermanentFailure` →
``kopf.PermanentError``.

kopf keeps its bookkeeping in ``alphaspt.io/*`` annotations (never in ``status``, whose
every field the CRD declares) and guards deletion with the ``alphaspt.io/finalizer``.

RBAC the operator needs, all in its namespace (a Role; the integration tests run it with
exactly this): tradingstrategies and riskprofiles (get, list, watch, patch) and their
``/status`` (get, patch); deployments (get, list, watch, create, patch, delete); events in
the core and ``events.k8s.io`` groups (create, patch); secrets (get: whether a Live
strategy's ``brokerSecretRef`` exists, read as metadata only). No cluster role: kopf's
namespace and CRD scanning is off, and start-up waits until the CRDs are served.

Every handler is wrapped by :func:`observed`: Prometheus metrics per kind and handler
(:mod:`~alphaspt.operator.metrics`) and the object's name on every log line written while
it runs (:mod:`~alphaspt.operator.logs`). kopf ignores changes of ``alphaspt.io/*``
annotations (its storage prefix), so the pause annotation is followed by event handlers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

import kopf

from alphaspt.core.config import OperatorConfig, Settings
from alphaspt.core.specs import GROUP, VERSION
from alphaspt.exceptions import AlphasptError, PermanentFailure, TemporaryFailure
from alphaspt.operator.conditions import (
    READY,
    RECONCILIATION_PAUSED,
    TRUE,
    find,
    reconciliation_paused,
)
from alphaspt.operator.kube import RISK_PROFILES, TRADING_STRATEGIES, credentials_of
from alphaspt.operator.kube import load_configuration as load_kube_configuration
from alphaspt.operator.logs import acting_on
from alphaspt.operator.logs import install as install_object_names
from alphaspt.operator.metrics import measured
from alphaspt.operator.planning import MANAGED_BY, STRATEGY_LABEL
from alphaspt.operator.services import Services

log = logging.getLogger(__name__)

TS: Final = (GROUP, VERSION, TRADING_STRATEGIES)
RP: Final = (GROUP, VERSION, RISK_PROFILES)
DEPLOYMENTS: Final = ("apps", "v1", "deployments")
FINALIZER: Final = "alphaspt.io/finalizer"
ANNOTATION_PREFIX: Final = "alphaspt.io"

Handler = Callable[..., Awaitable[Any]]


class KopfEvents:
    """Kubernetes Events through kopf's poster (outside a handler: logged only)."""

    def info(self, body: Mapping[str, Any], reason: str, message: str) -> None:
        self._post(body, "Normal", reason, message)

    def warn(self, body: Mapping[str, Any], reason: str, message: str) -> None:
        self._post(body, "Warning", reason, message)

    @staticmethod
    def _post(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        name = body.get("metadata", {}).get("name")
        log.log(logging.WARNING if type_ == "Warning" else logging.INFO,
                "%s %s: %s: %s", body.get("kind"), name, reason, message)
        # Outside a resource's task there is no event queue (start-up): logged only.
        with contextlib.suppress(LookupError):
            kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message)


def observed(kind: str, handler: str, fn: Handler) -> Handler:
    """Metrics (runs, errors, duration per kind and handler) and the object's name on every
    log line written while the handler runs."""

    @functools.wraps(fn)
    async def wrapper(**kwargs: Any) -> Any:
        with acting_on(kind, kwargs.get("namespace"), kwargs.get("name")), \
                measured(kind, handler):
            return await fn(**kwargs)

    return wrapper


def kopf_errors(fn: Handler) -> Handler:
    """Translate our errors into kopf's retry semantics."""

    @functools.wraps(fn)
    async def wrapper(**kwargs: Any) -> Any:
        try:
            return await fn(**kwargs)
        except TemporaryFailure as exc:
            raise kopf.TemporaryError(str(exc), delay=exc.retry_after or 10.0) from exc
        except PermanentFailure as exc:
            raise kopf.PermanentError(str(exc)) from exc

    return wrapper


def logged(fn: Handler) -> Handler:
    """For timers and events: our errors are logged (the status already says them) and the
    next tick tries again; anything else propagates to kopf."""

    @functools.wraps(fn)
    async def wrapper(**kwargs: Any) -> Any:
        try:
            return await fn(**kwargs)
        except AlphasptError as exc:
            logger = kwargs.get("logger") or log
            logger.warning("%s: %s", fn.__name__, exc)
            return None

    return wrapper


def services(memo: Any) -> Services:
    return cast(Services, memo.services)


# -- operator lifecycle ---------------------------------------------------------------------


@kopf_errors
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    settings.posting.level = logging.INFO
    # One known namespace, CRDs installed first: no cluster-wide watches of namespaces and
    # CRDs, so a namespaced Role is all the operator needs (start-up waits for the CRDs).
    settings.scanning.disabled = True
    app: Settings = memo.settings
    install_object_names()
    memo.services = await Services.start(app, KopfEvents())
    memo.services.start_background(app.operator)


async def cleanup(memo: Any, **_: Any) -> None:
    if getattr(memo, "services", None) is not None:
        await services(memo).close()


async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    app: Settings = memo.settings
    creds = credentials_of(load_kube_configuration(app.operator.kubeconfig))
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        insecure=creds.insecure,
        token=creds.token,
        scheme="Bearer" if creds.token else None,
        certificate_path=creds.certificate_path,
        private_key_path=creds.private_key_path,
        default_namespace=app.namespace,
    )


# -- TradingStrategy ------------------------------------------------------------------------


@kopf_errors
async def ts_desired_state(body: kopf.Body, old: Any, new: Any, memo: Any, **_: Any) -> None:
    await services(memo).strategies.announce_state(body, old, new)


@kopf_errors
async def ts_reconcile(name: str, memo: Any, **_: Any) -> None:
    await services(memo).strategies.reconcile(name)


@kopf_errors
async def ts_update(name: str, diff: kopf.Diff, memo: Any, **_: Any) -> None:
    strategies = services(memo).strategies
    await strategies.reconcile(name)
    for _op, path, old, _new in diff:
        if tuple(path) == ("spec", "riskProfileRef"):
            await strategies.profile_changed(old)


@kopf_errors
async def ts_finalize(body: kopf.Body, memo: Any, **_: Any) -> None:
    await services(memo).strategies.finalize(body)


@logged
async def ts_resync(name: str, memo: Any, **_: Any) -> None:
    await services(memo).strategies.reconcile(name, refresh_topics=True)


@logged
async def ts_runtime(name: str, memo: Any, **_: Any) -> None:
    await services(memo).strategies.refresh_runtime(name)


@logged
async def ts_event(name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """kopf ignores changes of ``alphaspt.io/*`` annotations (its own prefix), so the pause
    annotation is followed here: reconcile when it and ``ReconciliationPaused`` disagree.
    Likewise an edit of a strategy that is not Ready (e.g. reverting a failed edit): kopf
    would wait out the failed handler's retry delay first; this reconciles it at once."""
    if _pause_changed(body) or _edited_while_failing(body):
        await services(memo).strategies.reconcile(name)


@logged
async def rp_event(name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if _pause_changed(body):
        await services(memo).profiles.reconcile(name)


def _edited_while_failing(body: Mapping[str, Any]) -> bool:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    ready = find(status.get("conditions"), READY)
    return (not meta.get("deletionTimestamp") and ready is not None
            and ready.get("status") != TRUE and "observedGeneration" in status
            and int(meta.get("generation") or 0) != int(status["observedGeneration"]))


def _pause_changed(body: kopf.Body) -> bool:
    if body.metadata.get("deletionTimestamp"):
        return False
    shown = find((body.get("status") or {}).get("conditions"), RECONCILIATION_PAUSED)
    return reconciliation_paused(body.metadata) != (shown is not None)


@logged
async def deployment_event(body: kopf.Body, memo: Any, **_: Any) -> None:
    """A worker Deployment changed or vanished: repair it, refresh WorkerReady/Ready."""
    strategy = (body.metadata.labels or {}).get(STRATEGY_LABEL)
    if strategy:
        await services(memo).strategies.reconcile(strategy, full=False)


# -- RiskProfile ----------------------------------------------------------------------------


@kopf_errors
async def rp_kill_switch(body: kopf.Body, old: Any, new: Any, memo: Any, **_: Any) -> None:
    if old is None and not new:
        return  # created without a kill switch: nothing to announce
    await services(memo).profiles.kill_switch(body, bool(new))


@kopf_errors
async def rp_reconcile(name: str, memo: Any, **_: Any) -> None:
    await services(memo).profiles.reconcile(name)


@kopf_errors
async def rp_finalize(body: kopf.Body, memo: Any, **_: Any) -> None:
    await services(memo).profiles.finalize(body)


@logged
async def rp_resync(name: str, memo: Any, **_: Any) -> None:
    await services(memo).profiles.reconcile(name)


# -- registration ---------------------------------------------------------------------------


def make_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """Every handler of the operator on a fresh registry (order matters: see above)."""
    r = kopf.OperatorRegistry()
    on = kopf.on
    on.startup(registry=r)(startup)
    on.cleanup(registry=r)(cleanup)
    on.login(registry=r)(login)

    def rp(handler: str, fn: Handler) -> Handler:
        return observed("RiskProfile", handler, fn)

    def ts(handler: str, fn: Handler) -> Handler:
        return observed("TradingStrategy", handler, fn)

    on.field(*RP, field="spec.killSwitch", id="kill-switch", registry=r)(
        rp("kill-switch", rp_kill_switch))
    for decorator in (on.create, on.resume, on.update):
        decorator(*RP, id="reconcile", registry=r)(rp("reconcile", rp_reconcile))
    on.delete(*RP, id="finalize", registry=r)(rp("finalize", rp_finalize))
    kopf.timer(*RP, id="resync", interval=config.resync_interval,
               initial_delay=config.resync_interval, registry=r)(rp("resync", rp_resync))
    on.event(*RP, id="pause", registry=r)(rp("pause", rp_event))

    on.field(*TS, field="spec.desiredState", id="desired-state", registry=r)(
        ts("desired-state", ts_desired_state))
    on.create(*TS, id="reconcile", registry=r)(ts("reconcile", ts_reconcile))
    on.resume(*TS, id="reconcile", registry=r)(ts("reconcile", ts_reconcile))
    on.update(*TS, id="reconcile", registry=r)(ts("reconcile", ts_update))
    on.delete(*TS, id="finalize", registry=r)(ts("finalize", ts_finalize))
    kopf.timer(*TS, id="resync", interval=config.resync_interval,
               initial_delay=config.resync_interval, registry=r)(ts("resync", ts_resync))
    kopf.timer(*TS, id="runtime", interval=config.runtime_interval, registry=r)(
        ts("runtime", ts_runtime))
    on.event(*TS, id="pause", registry=r)(ts("pause", ts_event))

    on.event(*DEPLOYMENTS, labels={"app.kubernetes.io/managed-by": MANAGED_BY},
             id="worker", registry=r)(observed("Deployment", "worker", deployment_event))
    return r
