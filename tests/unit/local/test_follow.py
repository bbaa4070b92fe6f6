"""`up` follows its manifests: what an edit means, in the operator's terms."""

from __future__ import annotations

from pathlib import Path

from alphaspt.local.examples import write_examples
from alphaspt.local.follow import DirectoryWatch, diff
from alphaspt.local.manifests import check_manifests
from alphaspt.operator.planning import Plan, PlanConfig


def _plan(directory: Path) -> Plan:
    desired, problems = check_manifests(directory, PlanConfig())
    assert desired is not None, problems
    return desired


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_kill_switch_pause_params_and_removal(tmp_path: Path) -> None:
    write_examples(tmp_path)
    before = _plan(tmp_path)
    assert diff(before, before).empty

    _edit(tmp_path / "risk-profile.yaml", "killSwitch: false", "killSwitch: true")
    changes = diff(before, _plan(tmp_path))
    assert changes.kill_switch == (("paper-default", True),)
    assert [r.name for r in changes.profiles] == ["paper-default"]
    assert not (changes.start or changes.stop or changes.restart or changes.pause)
    assert changes.describe() == "killSwitch paper-default on"

    killed = _plan(tmp_path)
    _edit(tmp_path / "momentum.yaml", "desiredState: Running", "desiredState: Paused")
    _edit(tmp_path / "mean-reversion.yaml", "quantity: 5", "quantity: 7")
    changes = diff(killed, _plan(tmp_path))
    assert changes.pause == ("momentum-demo",) and changes.stop == ("strategy-momentum-demo",)
    assert {r.name for r in changes.strategies} == {"momentum-demo", "mean-reversion-demo"}
    assert changes.restart == () and changes.kill_switch == ()  # params: CONFIG_CHANGED only

    paused = _plan(tmp_path)
    _edit(tmp_path / "momentum.yaml", "desiredState: Paused", "desiredState: Running")
    changes = diff(paused, _plan(tmp_path))
    assert changes.resume == ("momentum-demo",)
    assert [w.name for w in changes.start] == ["strategy-momentum-demo"]

    (tmp_path / "mean-reversion.yaml").unlink()
    changes = diff(paused, _plan(tmp_path))
    assert changes.removed == ("mean-reversion-demo",)
    assert "mean-reversion-demo" in changes.pause
    assert "strategy-mean-reversion-demo" in changes.stop


def test_a_new_strategy_brings_its_topic_and_worker(tmp_path: Path) -> None:
    write_examples(tmp_path)
    before = _plan(tmp_path)
    text = (tmp_path / "momentum.yaml").read_text().replace("name: momentum-demo", "name: m2")
    (tmp_path / "m2.yaml").write_text(text)
    changes = diff(before, _plan(tmp_path))
    assert [t.name for t in changes.topics] == ["strategy.m2.state"]
    assert [w.name for w in changes.start] == ["strategy-m2"]


def test_directory_watch_sees_edits_once(tmp_path: Path) -> None:
    write_examples(tmp_path)
    watch = DirectoryWatch(tmp_path)
    assert not watch.changed()
    _edit(tmp_path / "momentum.yaml", "quantity: 10", "quantity: 11")
    assert watch.changed() and not watch.changed()
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert not watch.changed()
    (tmp_path / "momentum.yaml").unlink()
    assert watch.changed()
