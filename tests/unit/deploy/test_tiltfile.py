"""The Tiltfile: evaluated by a Starlark interpreter (starlark-rust) with recording stand-ins
for Tilt's builtins, then checked against the files, the chart and the images it names.

Nothing here runs Tilt, Docker or kind; what is checked is that the Tiltfile parses and runs
as Starlark, and that everything it refers to exists and fits together.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import starlark as sl
import yaml

REPO = Path(__file__).resolve().parents[3]
TILTFILE = REPO / "Tiltfile"


@dataclass(frozen=True)
class Step:
    kind: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class HelmCall:
    chart: str
    kwargs: dict[str, Any]


@dataclass
class Recorder:
    """What the Tiltfile asked Tilt to do."""

    calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = field(default_factory=dict)

    def builtin(self, name: str, result: Callable[..., Any] | None = None) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.setdefault(name, []).append((args, kwargs))
            return None if result is None else result(*args, **kwargs)

        return call

    def of(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return self.calls.get(name, [])


def _opaque(kind: str) -> Callable[..., Any]:
    return lambda *args, **kwargs: sl.OpaquePythonObject(Step(kind, args, kwargs))


def evaluate_tiltfile() -> Recorder:
    recorder = Recorder()
    module = sl.Module()
    plain = ["allow_k8s_contexts", "local_resource", "k8s_yaml", "k8s_resource", "docker_build",
             "watch_file"]
    for name in plain:
        module.add_callable(name, recorder.builtin(name))
    for name in ("sync", "run", "fall_back_on", "port_forward"):
        module.add_callable(name, recorder.builtin(name, _opaque(name)))
    module.add_callable("local", recorder.builtin("local", lambda *a, **k: ""))
    module.add_callable("helm", recorder.builtin(
        "helm", lambda chart, **kw: sl.OpaquePythonObject(HelmCall(chart, kw))))
    dialect = sl.Dialect.standard()
    dialect.enable_top_level_stmt = True  # Tilt allows top-level for/if
    dialect.enable_load = False  # the Tiltfile needs no extension
    ast = sl.parse("Tiltfile", TILTFILE.read_text(), dialect)
    sl.eval(module, ast, sl.Globals.standard())
    return recorder


@pytest.fixture(scope="module")
def tilt() -> Recorder:
    return evaluate_tiltfile()


@pytest.fixture(scope="module")
def dev_objects(chart: helm.Chart, tilt: Recorder) -> list[dict[str, Any]]:
    """The chart rendered as the Tiltfile's helm() call renders it."""
    [(_, kwargs)] = tilt.of("helm")
    values: dict[str, Any] = {}
    for path in kwargs["values"]:
        values.update(yaml.safe_load((REPO / path).read_text()))
    rendered = chart.render(values, name=kwargs["name"], namespace=kwargs["namespace"],
                            is_install=True)
    return [doc for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def _docker_builds(tilt: Recorder) -> dict[str, dict[str, Any]]:
    return {args[0]: {"context": args[1], **kwargs} for args, kwargs in tilt.of("docker_build")}


def test_tiltfile_builds_both_images(tilt: Recorder) -> None:
    builds = _docker_builds(tilt)
    assert set(builds) == {"alphaspt-operator", "alphaspt-worker"}
    assert builds["alphaspt-operator"]["dockerfile"] == "Dockerfile.operator"
    assert builds["alphaspt-worker"]["dockerfile"] == "Dockerfile.worker"
    for ref, build in builds.items():
        assert build["context"] == "."
        for path in build["only"]:
            assert (REPO / path).exists() or path == "./README.md", (ref, path)


def test_images_are_the_ones_the_dev_values_name(tilt: Recorder) -> None:
    [(_, kwargs)] = tilt.of("helm")
    values = yaml.safe_load((REPO / kwargs["values"][0]).read_text())
    assert {values["image"]["operator"]["repository"], values["image"]["worker"]["repository"]} \
        == set(_docker_builds(tilt))
    # The operator's worker image (an env var) is rewritten to the build Tilt made.
    assert _docker_builds(tilt)["alphaspt-worker"]["match_in_env_vars"] is True


def test_live_update_syncs_python_into_the_chart_dev_overlay(
    tilt: Recorder, dev_objects: list[dict[str, Any]]
) -> None:
    for ref, build in _docker_builds(tilt).items():
        steps = build["live_update"]
        kinds = [step.kind for step in steps]
        assert kinds == ["fall_back_on", "sync", "run"], ref
        sync = steps[1]
        assert sync.args == ("./alphaspt", "/opt/alphaspt/dev/alphaspt")
        assert (REPO / "alphaspt").is_dir()
        run_command = steps[2].args[0]
        trigger = run_command.split(">")[-1].strip()
        # The chart runs each process under the supervisor watching exactly that file, with
        # the synced directory first on PYTHONPATH.
        for deployment in (o for o in dev_objects if o["kind"] == "Deployment"):
            [container] = deployment["spec"]["template"]["spec"]["containers"]
            command = container["command"]
            assert command[1] == "/opt/alphaspt/dev-tools/dev-supervisor.py"
            assert command[2] == trigger
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["PYTHONPATH"] + "/alphaspt" == sync.args[1]


def test_tiltfile_installs_the_chart_with_the_dev_values(tilt: Recorder) -> None:
    [(args, kwargs)] = tilt.of("helm")
    assert args == ("helm/alphaspt",)
    assert (REPO / args[0] / "Chart.yaml").is_file()
    assert kwargs["values"] == ["kind/values-dev.yaml"]
    assert kwargs["namespace"] == "alphaspt" and kwargs["name"] == "alphaspt"
    applied = [a[0] for a, _ in tilt.of("k8s_yaml")]
    helm_results = [x for x in applied if not isinstance(x, str)]
    assert len(helm_results) == 1
    # Helm refuses a chart with missing dependency archives: the Tiltfile fetches them.
    [(local_args, _)] = tilt.of("local")
    assert "helm dependency build helm/alphaspt" in local_args[0]


def test_dev_services_and_connections(tilt: Recorder) -> None:
    applied = [a[0] for a, _ in tilt.of("k8s_yaml") if isinstance(a[0], str)]
    assert applied == ["kind/dev-services.yaml"]
    services = [d for d in yaml.safe_load_all((REPO / applied[0]).read_text()) if d]
    assert {d["metadata"]["namespace"] for d in services} == {"alphaspt"}
    resources = {a[0] for a, _ in tilt.of("k8s_resource")}
    workloads = {d["metadata"]["name"] for d in services if d["kind"] == "Deployment"}
    assert workloads == {"redpanda", "postgres", "redis"} and workloads <= resources
    local = {a[0]: (a, k) for a, k in tilt.of("local_resource")}
    cmd = local["dev-connections"][1]["cmd"]
    assert cmd == "bash kind/dev-connections.sh alphaspt"
    script = REPO / "kind" / "dev-connections.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_every_tilt_resource_names_a_workload(tilt: Recorder,
                                              dev_objects: list[dict[str, Any]]) -> None:
    chart_workloads = {o["metadata"]["name"] for o in dev_objects if o["kind"] == "Deployment"}
    services = {d["metadata"]["name"] for d in
                yaml.safe_load_all((REPO / "kind" / "dev-services.yaml").read_text())
                if d and d["kind"] == "Deployment"}
    locals_ = {a[0] for a, _ in tilt.of("local_resource")}
    named = {a[0] for a, _ in tilt.of("k8s_resource")}
    assert named == chart_workloads | services
    for _, kwargs in tilt.of("k8s_resource") + tilt.of("local_resource"):
        for dep in kwargs.get("resource_deps", []):
            assert dep in named | locals_, dep


def test_api_is_port_forwarded_to_its_container_port(tilt: Recorder,
                                                     dev_objects: list[dict[str, Any]]) -> None:
    forwards = {a[0]: k["port_forwards"] for a, k in tilt.of("k8s_resource")
                if "port_forwards" in k}
    assert set(forwards) == {"alphaspt-api"}
    [step] = forwards["alphaspt-api"]
    local_port, container_port = step.args
    [api] = [o for o in dev_objects if o["metadata"]["name"] == "alphaspt-api"
             and o["kind"] == "Deployment"]
    [port] = api["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert local_port == 8000 and container_port == port["containerPort"]


def test_examples_are_applied_after_the_operator(tilt: Recorder) -> None:
    local = {a[0]: k for a, k in tilt.of("local_resource")}
    examples = local["examples"]
    assert examples["cmd"] == "kubectl -n alphaspt apply -f examples/"
    assert examples["resource_deps"] == ["alphaspt-operator"]
    assert (REPO / "examples").is_dir()
