"""``alphaspt up`` follows its manifests directory: what changed between two plans.

:class:`DirectoryWatch` notices a change of the directory's YAML files (their names and
contents; polled, no inotify needed). :func:`diff` compares the plan that runs with the
plan of the edited manifests (both from the operator's :func:`~alphaspt.operator.planning.
plan`) and says what to do, in the operator's terms:

- a RiskProfile whose ``killSwitch`` changed: KILL_SWITCH (value = engaged) on
  ``control.commands`` at once, then its row and CONFIG_CHANGED;
- a TradingStrategy leaving ``Running`` (or removed): PAUSE before its worker stops; coming
  back: RESUME after its row is stored, and its worker starts;
- any other change of a spec (params, instruments, limits): the row, then CONFIG_CHANGED
  (the runner reloads itself; shared stages reload everything);
- a worker whose command or environment changed while it runs is restarted (the
  operator's rolling update; a spec edit alone does not change them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from alphaspt.core.specs import DesiredState
from alphaspt.local.manifests import manifest_files
from alphaspt.operator.planning import Plan, RiskProfileRow, StrategyRow, TopicPlan, WorkerSpec


class DirectoryWatch:
    """Polls ``path`` (a directory or one file) for a change of its YAML files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = self._fingerprint()

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        try:
            files = manifest_files(self.path) if self.path.exists() else []
            for file in files:
                digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
        except OSError as exc:  # a file removed while listing: look again next time
            digest.update(str(exc).encode())
        return digest.hexdigest()

    def changed(self) -> bool:
        """True once after each change."""
        now = self._fingerprint()
        if now == self._seen:
            return False
        self._seen = now
        return True


@dataclass(frozen=True)
class Changes:
    kill_switch: tuple[tuple[str, bool], ...] = ()
    """(profile, engaged) for profiles whose ``killSwitch`` changed (new ones if engaged)."""
    profiles: tuple[RiskProfileRow, ...] = ()
    """Rows to store: new or changed RiskProfiles."""
    strategies: tuple[StrategyRow, ...] = ()
    """Rows to store: new or changed TradingStrategies."""
    removed: tuple[str, ...] = ()
    """TradingStrategies gone from the manifests (archive their rows, stop their workers)."""
    pause: tuple[str, ...] = ()
    resume: tuple[str, ...] = ()
    topics: tuple[TopicPlan, ...] = ()
    """Topics the new plan has and the old one does not."""
    start: tuple[WorkerSpec, ...] = ()
    stop: tuple[str, ...] = ()
    """Worker names to stop."""
    restart: tuple[WorkerSpec, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.kill_switch or self.profiles or self.strategies or self.removed
                    or self.topics or self.start or self.stop or self.restart)

    def describe(self) -> str:
        parts = [f"killSwitch {name} {'on' if on else 'off'}" for name, on in self.kill_switch]
        parts += [f"paused {n}" for n in self.pause] + [f"resumed {n}" for n in self.resume]
        parts += [f"removed {n}" for n in self.removed]
        touched = {r.name for r in self.strategies} - set(self.pause) - set(self.resume)
        parts += [f"updated {n}" for n in sorted(touched)]
        quiet = {n for n, _ in self.kill_switch}
        parts += [f"updated profile {r.name}" for r in self.profiles if r.name not in quiet]
        return ", ".join(parts) or "no effective change"


def diff(old: Plan, new: Plan) -> Changes:
    """What to do to go from the running ``old`` plan to ``new``."""
    old_profiles = {r.name: r for r in old.risk_profiles}
    new_profiles = {r.name: r for r in new.risk_profiles}
    kill = tuple(
        (name, row.spec.kill_switch) for name, row in new_profiles.items()
        if (name in old_profiles and old_profiles[name].spec.kill_switch != row.spec.kill_switch)
        or (name not in old_profiles and row.spec.kill_switch))
    profiles = tuple(r for n, r in new_profiles.items()
                     if n not in old_profiles or old_profiles[n].spec != r.spec)
    old_rows = {r.name: r for r in old.strategies}
    new_rows = {r.name: r for r in new.strategies}
    strategies = tuple(r for n, r in new_rows.items()
                       if n not in old_rows or old_rows[n].spec != r.spec)
    removed = tuple(sorted(set(old_rows) - set(new_rows)))
    pause, resume = [], []
    for name, row in new_rows.items():
        before = old_rows[name].spec.desired_state if name in old_rows else None
        after = row.spec.desired_state
        if after is not DesiredState.RUNNING and before is DesiredState.RUNNING:
            pause.append(name)
        elif after is DesiredState.RUNNING and before in (DesiredState.PAUSED,
                                                          DesiredState.STOPPED):
            resume.append(name)
    old_workers = {w.strategy: w for w in old.workers}
    new_workers = {w.strategy: w for w in new.workers}
    start, stop, restart = [], [], []
    for name, worker in new_workers.items():
        was = old_workers.get(name)
        running_before = was is not None and was.replicas > 0
        if worker.replicas > 0 and not running_before:
            start.append(worker)
        elif worker.replicas == 0 and running_before:
            stop.append(worker.name)
        elif worker.replicas > 0 and was is not None and (
                was.argv != worker.argv or dict(was.env) != dict(worker.env)):
            restart.append(worker)
    stop += [old_workers[n].name for n in removed if old_workers[n].replicas > 0]
    old_topics = {t.name for t in old.topics}
    return Changes(
        kill_switch=kill, profiles=profiles, strategies=strategies, removed=removed,
        pause=tuple(pause) + removed, resume=tuple(resume),
        topics=tuple(t for t in new.topics if t.name not in old_topics),
        start=tuple(start), stop=tuple(stop), restart=tuple(restart))
