"""The kopf glue: error translation, login from a kubeconfig, registration."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from alphaspt.core.config import OperatorConfig, Settings
from alphaspt.exceptions import DependencyNotReady, InvalidConfiguration
from alphaspt.operator.handlers import (
    _edited_while_failing,
    kopf_errors,
    logged,
    login,
    make_registry,
    ts_update,
)


async def test_temporary_and_permanent_failures_map_to_kopf() -> None:
    @kopf_errors
    async def waits(**_: Any) -> None:
        raise DependencyNotReady("RiskProfile x not found", retry_after=3.0)

    @kopf_errors
    async def invalid(**_: Any) -> None:
        raise InvalidConfiguration("bad spec")

    with pytest.raises(kopf.TemporaryError) as temporary:
        await waits()
    assert temporary.value.delay == 3.0 and "RiskProfile x" in str(temporary.value)
    with pytest.raises(kopf.PermanentError, match="bad spec"):
        await invalid()


async def test_timers_log_our_errors_and_raise_others() -> None:
    @logged
    async def ours(**_: Any) -> None:
        raise DependencyNotReady("later")

    @logged
    async def bug(**_: Any) -> None:
        raise KeyError("x")

    assert await ours() is None
    with pytest.raises(KeyError):
        await bug()


async def test_login_uses_the_configured_kubeconfig(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here")
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443",
                                               "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"}))
    settings = Settings(namespace="desk", operator=OperatorConfig(kubeconfig=kubeconfig))
    info = await login(memo=SimpleNamespace(settings=settings))
    assert info.server == "https://10.0.0.1:6443" and info.token == "t0ken"
    assert info.scheme == "Bearer" and info.default_namespace == "desk"
    assert info.ca_path == str(ca)


def test_registry_builds() -> None:
    assert isinstance(make_registry(OperatorConfig()), kopf.OperatorRegistry)


class _Strategies:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def reconcile(self, name: str) -> None:
        self.calls.append(("reconcile", name))

    async def profile_changed(self, old: str | None) -> None:
        self.calls.append(("profile_changed", old))


async def test_update_releases_the_previous_risk_profile() -> None:
    strategies = _Strategies()
    memo = SimpleNamespace(services=SimpleNamespace(strategies=strategies))
    diff = kopf.Diff([
        kopf.DiffItem(kopf.DiffOperation.CHANGE, ("spec", "riskProfileRef"), "old", "new"),
        kopf.DiffItem(kopf.DiffOperation.CHANGE, ("spec", "params", "x"), 1, 2),
    ])
    await ts_update(name="mom", diff=diff, memo=memo)
    assert strategies.calls == [("reconcile", "mom"), ("profile_changed", "old")]


def test_an_edit_of_a_failing_strategy_is_reconciled_at_once() -> None:
    def body(generation: int, observed: int, ready: str) -> dict[str, Any]:
        return {"metadata": {"generation": generation}, "status": {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": ready, "reason": "X"}]}}

    assert _edited_while_failing(body(3, 2, "False"))
    assert not _edited_while_failing(body(2, 2, "False"))  # nothing new: kopf retries
    assert not _edited_while_failing(body(3, 2, "True"))  # kopf's update handler does it
    deleting = body(3, 2, "False")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not _edited_while_failing(deleting)
    assert not _edited_while_failing({"metadata": {"generation": 1}})
