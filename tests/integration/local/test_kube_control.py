"""`alphaspt pause|resume|kill --kube` patch the custom resources of the real kube-apiserver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The operator tests' session fixtures (a kube-apiserver with the CRDs and a namespace).
from tests.integration.operator.conftest import (  # noqa: F401 - fixtures used by name
    Kube,
    crds,
    kube,
    kube_server,
    namespace,
    profile_manifest,
    strategy_manifest,
)
from tests.support.kube_apiserver import KubeApiServer

pytestmark = [pytest.mark.integration, pytest.mark.kube]


def cli(*args: str, kubeconfig: Path, ns: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")},
           "ALPHASPT_OPERATOR__KUBECONFIG": str(kubeconfig), "ALPHASPT_NAMESPACE": ns,
           "ALPHASPT_SETTINGS_FILE": "/nonexistent.toml"}
    return subprocess.run([sys.executable, "-m", "alphaspt", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_pause_resume_and_kill_patch_the_resources(
        kube: Kube, kube_server: KubeApiServer, namespace: str,  # noqa: F811 - fixtures
        tmp_path: Path) -> None:
    ns = namespace
    kubeconfig = kube_server.write_kubeconfig(tmp_path / "kubeconfig")
    for profile in ("p1", "p2"):
        kube.create(kube.rp(ns), profile_manifest(profile))
    kube.create(kube.ts(ns), strategy_manifest("s1", "p1", params={"quantity": 1}))

    paused = cli("pause", "s1", "--kube", kubeconfig=kubeconfig, ns=ns)
    assert paused.returncode == 0, paused.stderr
    assert (kube.get(kube.ts(ns, "s1")) or {})["spec"]["desiredState"] == "Paused"
    assert cli("resume", "s1", "--kube", kubeconfig=kubeconfig, ns=ns).returncode == 0
    assert (kube.get(kube.ts(ns, "s1")) or {})["spec"]["desiredState"] == "Running"

    killed = cli("kill", "--kube", kubeconfig=kubeconfig, ns=ns)
    assert killed.returncode == 0, killed.stderr
    assert killed.stdout.count("killSwitch true") == 2
    assert all((kube.get(kube.rp(ns, p)) or {})["spec"]["killSwitch"] is True
               for p in ("p1", "p2"))
    assert cli("kill", "--off", "--kube", kubeconfig=kubeconfig, ns=ns).returncode == 0
    assert all((kube.get(kube.rp(ns, p)) or {})["spec"]["killSwitch"] is False
               for p in ("p1", "p2"))

    missing = cli("pause", "nope", "--kube", kubeconfig=kubeconfig, ns=ns)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"alphaspt: error: tradingstrategies {ns}/nope not found"
    flatten = cli("kill", "--flatten", "--kube", kubeconfig=kubeconfig, ns=ns)
    assert flatten.returncode == 2 and "FLATTEN" in flatten.stderr
    assert all((kube.get(kube.rp(ns, p)) or {})["spec"]["killSwitch"] is False
               for p in ("p1", "p2")), "a refused command patched something"
