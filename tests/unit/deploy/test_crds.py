"""One source of truth for the CustomResourceDefinitions: crds/ at the top of the repository.

The chart's crds/ directory is a symbolic link to it (Helm follows it when it loads or
packages the chart; `helm package` stores the files themselves). Helm installs the files of a
chart's crds/ before anything else on the first install, and never upgrades or deletes them:
deleting a CRD would delete every TradingStrategy with it. Upgrades apply them explicitly
(`helm show crds CHART | kubectl apply --server-side -f -`, see NOTES.txt).
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

# No type information ships with it: typed as Any.
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "helm" / "alphaspt"
CRDS_DIR = REPO / "crds"


def _crd_files() -> list[Path]:
    return sorted(p for p in CRDS_DIR.iterdir() if p.suffix in {".yaml", ".yml", ".json"})


@pytest.fixture(scope="module")
def chart_crds() -> list[dict[str, str]]:
    """The CRDs as Helm loads them from the chart in the repository (through the link)."""
    helm.disable_logging()
    with helm.Chart.load(CHART_DIR) as chart:
        return chart.crds


def test_chart_crds_directory_is_a_link_to_crds() -> None:
    link = CHART_DIR / "crds"
    assert link.is_symlink()
    assert os.readlink(link) == "../../crds"  # relative: works in any checkout
    assert link.resolve() == CRDS_DIR.resolve()


def test_helm_loads_exactly_the_files_of_crds(chart_crds: list[dict[str, str]]) -> None:
    files = _crd_files()
    assert len(files) >= 2
    assert [c["name"] for c in chart_crds] == [f"crds/{p.name}" for p in files]
    for crd, path in zip(chart_crds, files, strict=True):
        assert crd["data"] == path.read_text()


def test_the_packaged_chart_carries_the_crds_themselves(tmp_path: Path) -> None:
    # The same layout in a scratch tree (link kept), with stand-ins for the dependency archives
    # Helm insists on before packaging.
    shutil.copytree(CRDS_DIR, tmp_path / "crds")
    chart = tmp_path / "helm" / "alphaspt"
    shutil.copytree(CHART_DIR, chart, symlinks=True, ignore=shutil.ignore_patterns("charts"))
    assert (chart / "crds").is_symlink()
    for name, version in {"redpanda": "5.9.0", "postgresql": "16.0.0", "redis": "20.0.0"}.items():
        (chart / "charts" / name).mkdir(parents=True)
        (chart / "charts" / name / "Chart.yaml").write_text(
            f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    archive = helm.package(chart, destination=tmp_path)
    with helm.Chart.load(archive) as packaged:
        assert {c["name"]: c["data"] for c in packaged.crds} == {
            f"crds/{p.name}": p.read_text() for p in _crd_files()}


def _crds() -> list[dict[str, Any]]:
    return [doc for p in _crd_files() for doc in yaml.safe_load_all(p.read_text()) if doc]


def test_crds_are_valid_and_cover_the_operator_rbac(render: Any, to_objects: Any) -> None:
    version = kubernetes_validate.utils.latest_version()
    plurals = set()
    for crd in _crds():
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == "alphaspt.io"
        kubernetes_validate.validate(crd, version, strict=True)
        plurals.add(crd["spec"]["names"]["plural"])
    assert plurals == {"tradingstrategies", "riskprofiles"}
    objects = to_objects(render())
    granted = {resource for o in objects if o["kind"] == "Role" for rule in o["rules"]
               if rule["apiGroups"] == ["alphaspt.io"] for resource in rule["resources"]}
    assert granted == {f"{p}{sub}" for p in plurals for sub in ("", "/status", "/finalizers")}


def test_templates_hold_no_crd(render: Any, to_objects: Any) -> None:
    """Only crds/ installs them, so a `helm uninstall` can never delete them."""
    assert not [o for o in to_objects(render()) if o["kind"] == "CustomResourceDefinition"]
