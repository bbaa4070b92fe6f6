"""What every benchmark of ``python -m bench`` shares: servers, child processes, figures.

- :func:`start_broker` starts the broker the run measures on (Apache Kafka 4.x by default,
  or tansu) on a free loopback port and returns its address and a stop function.
- :func:`run_child` runs one candidate in its own process, pinned to one core where the
  machine allows it, and returns the JSON it prints on its last line.
- :func:`interleave` runs candidates in rounds A, B, A, B… so drift of a shared machine
  hits every candidate alike, and :func:`summary` reduces each one's samples to min and
  median.
- :class:`Window` counts a candidate's input messages and times the first to the last;
  it imports nothing but the standard library, so a peer running in another venv
  (:mod:`bench.peer_quix`) counts exactly like AlphasPT's candidates.
- :func:`venv_python` creates (once) a venv of its own for a peer whose dependencies
  conflict with AlphasPT's, from a declared requirements file.
- :class:`Figure` is one row of the table and of ``bench/results/*.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    goal: str | None = None
    """A condition on ``ratio``, e.g. ``">= 0.6"`` (figures without one are references)."""
    met: bool | None = None
    note: str = ""
    section: str | None = None
    """The ``python -m bench`` section that measured it (set by the runner)."""

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline_value:
            self.ratio = self.value / self.baseline_value
        if self.goal is not None and self.ratio is not None:
            op, _, bound = self.goal.partition(" ")
            self.met = self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        if isinstance(self.value, float) and math.isnan(self.value):
            out["value"] = None  # no measurement (the note says why); JSON has no NaN
        return {k: v for k, v in out.items() if k == "value" or (v is not None and v != "")}


class Window:
    """Counts input messages below the recorded end offsets; times the first to the last."""

    def __init__(self, topic: str, ends: Mapping[int, int]) -> None:
        self.topic = topic
        self.ends = dict(ends)
        self.n = sum(self.ends.values())
        self.counted = 0
        self.processed = 0
        self.started = 0.0
        self.cpu_started = 0.0

    def see(self, topic: str, partition: int, offset: int) -> bool:
        """Record one message; True once all ``n`` have been seen."""
        if not self.processed:
            self.started = time.perf_counter()
            self.cpu_started = time.process_time()
        self.processed += 1
        if topic == self.topic and offset < self.ends.get(partition, 0):
            self.counted += 1
        return self.counted >= self.n

    def result(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        cpu = time.process_time() - self.cpu_started
        return {"msgs_per_s": self.processed / elapsed, "seconds": elapsed,
                "processed": self.processed, "cpu_us_per_msg": cpu / self.processed * 1e6}


def start_broker(kind: str) -> tuple[str, Callable[[], None]]:
    """(bootstrap servers, stop) of a fresh single-node broker on loopback."""
    if kind == "apache":
        from alphaspt.local.apache_kafka import ApacheKafka

        broker = ApacheKafka()
        broker.start()
        return broker.bootstrap_servers, broker.stop
    from alphaspt.local.servers import Tansu

    tansu = Tansu(Path(tempfile.mkdtemp(prefix="alphaspt-bench-tansu-")))
    tansu.start()
    return tansu.bootstrap_servers, tansu.stop


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


@contextlib.contextmanager
def elsewhere(core: int | None) -> Iterator[None]:
    """Servers started inside run on every core but ``core`` (the candidates' core), so a
    broker's threads never preempt the candidate on its core, nor share its caches:
    without it, a stage's CPU per message doubled in one run out of three here."""
    usable = cores()
    if core is None or len(usable) < 2 or not hasattr(os, "sched_setaffinity"):
        yield
        return
    os.sched_setaffinity(0, set(usable) - {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, set(usable))


def pin(core: int | None) -> None:
    """Pin this process (and the threads it starts later) to one core, where possible."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core})


def run_child(module: str, args: Mapping[str, Any], *, core: int | None,
              timeout: float = 300.0, profile: Path | None = None,
              python: Path | None = None) -> dict[str, Any]:
    """``python -m <module> '<json args>'`` in its own process; its last stdout line is
    the JSON result. The child pins itself to ``core`` before doing anything else. With
    ``profile``, it runs under ``py-spy record`` (raw collapsed stacks into that file).
    ``python``: another interpreter (a peer's own venv, :func:`venv_python`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    payload = json.dumps({**args, "core": core})
    argv = [str(python or sys.executable), "-m", module, payload]
    if profile is not None:
        argv = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw",
                "--rate", "250", "--nonblocking", "-o", str(profile), "--", *argv]
    proc = subprocess.run(argv, env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {args.get('candidate', '')} failed "
                           f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def venv_python(name: str, requirements: Path) -> Path:
    """The interpreter of ``~/.cache/alphaspt/<name>``, a venv holding exactly
    ``requirements``; created on first use, and again when the requirements file changes
    (a copy of it is kept in the venv to compare)."""
    venv = Path.home() / ".cache" / "alphaspt" / name
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = requirements.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating {venv} from {requirements.relative_to(ROOT)} (once)")
    base = Path(getattr(sys, "_base_executable", "") or sys.executable)
    for argv in ([str(base), "-m", "venv", "--clear", str(venv)],
                 [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "-r", str(requirements)]):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} failed (exit {proc.returncode}):\n"
                               f"{(proc.stderr or proc.stdout)[-2000:]}")
    stamp.write_text(wanted)
    return python


def interleave(candidates: Sequence[str], rounds: int,
               run: Callable[[str], dict[str, Any]],
               progress: Callable[[str], None] = print) -> dict[str, list[dict[str, Any]]]:
    """Each candidate ``rounds`` times, in the order A, B, C, A, B, C…"""
    samples: dict[str, list[dict[str, Any]]] = {c: [] for c in candidates}
    for r in range(rounds):
        for candidate in candidates:
            result = run(candidate)
            samples[candidate].append(result)
            progress(f"  round {r + 1}/{rounds} {candidate}: "
                     + ", ".join(f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in result.items() if not isinstance(v, list)))
    return samples


def top_frames(collapsed: Path, limit: int = 25, within: str | None = None) -> str:
    """The frames with the most own time (leaf samples) of a py-spy raw profile; with
    ``within``, only of the samples whose stack holds a frame starting with it (a stage's
    loop, not the imports and group join before it)."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if within is not None and not any(f.startswith(within) for f in frames):
            continue
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    rows = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
    return "\n".join(f"{100 * c / max(total, 1):5.1f}%  {frame}" for frame, c in rows)


def summary(values: Sequence[float]) -> tuple[float, float]:
    """(min, median)."""
    return min(values), statistics.median(values)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=ROOT, capture_output=True, text=True, check=False).stdout
    return out.stdout.strip() + ("-dirty" if dirty.strip() else "")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(),
            "usable_cores": len(cores()), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def load() -> dict[str, Any]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    one, five, fifteen = os.getloadavg()
    return {"uptime": uptime.stdout.strip(), "loadavg": [one, five, fifteen]}


def table(figures: Sequence[Figure]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "goal", "met")]
    for f in figures:
        rows.append((
            f.name, f"{f.value:,.4g} {f.unit}",
            "" if f.baseline_value is None else f"{f.baseline_name}: {f.baseline_value:,.4g}",
            "" if f.ratio is None else f"{f.ratio:.2f}",
            f.goal or "", "" if f.met is None else ("yes" if f.met else "NO"),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
