"""Nothing invalid starts: the checks `up` (and the operator) run before anything runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from alphaspt.cli import main
from alphaspt.core.specs import RiskProfileSpec
from alphaspt.local.examples import example_files, write_examples
from alphaspt.local.manifests import check_manifests, scan_replay
from alphaspt.operator.planning import PlanConfig
from alphaspt.strategies.validation import Problem, validate_strategy

REPO = Path(__file__).resolve().parents[3]
SPEC = {"strategy": "momentum", "params": {"quantity": 5}, "instruments": ["TCS", "INFY"],
        "riskProfileRef": "p"}


def test_a_valid_strategy_has_no_problems() -> None:
    assert validate_strategy("m", SPEC) == []


def test_unknown_strategy_names_the_field() -> None:
    [problem] = validate_strategy("m", {**SPEC, "strategy": "momentom"}, file="s.yaml")
    assert problem.resource == "TradingStrategy default/m"
    assert problem.field == "spec.strategy"
    assert "unknown strategy 'momentom'" in problem.message
    assert str(problem).startswith("s.yaml: TradingStrategy default/m: spec.strategy: ")


def test_a_params_typo_and_a_bad_value_are_each_named() -> None:
    problems = validate_strategy("m", {**SPEC, "params": {"quantty": 5, "threshold": 2}})
    assert {p.field for p in problems} == {"spec.params.quantty", "spec.params.threshold"}
    assert any("misspelt" in p.message for p in problems)


def test_an_unimportable_module_strategy_is_refused() -> None:
    [problem] = validate_strategy("m", {**SPEC, "strategy": "nowhere.at_all:Strategy"})
    assert problem.field == "spec.strategy" and "cannot import" in problem.message


def test_invalid_spec_fields_are_named_in_camel_case() -> None:
    problems = validate_strategy("m", {**SPEC, "instruments": [], "riskProfileRef": "Bad_"})
    assert {p.field for p in problems} == {"spec.instruments", "spec.riskProfileRef"}


def test_instruments_outside_the_profile_or_unknown() -> None:
    profile = RiskProfileSpec(allowed_instruments=("TCS",))
    [outside] = validate_strategy("m", SPEC, profile=profile)
    assert outside.field == "spec.instruments" and "INFY" in outside.message
    [unknown] = validate_strategy("m", SPEC, known_instruments={"TCS"})
    assert "unknown instruments INFY" in unknown.message
    assert validate_strategy("m", SPEC, known_instruments={"TCS"}, unknown_is_error=False) == []
    assert validate_strategy("m", SPEC, known_instruments={"SBIN"}, unknown_is_error=False)


def _examples(tmp_path: Path) -> Path:
    directory = tmp_path / "m"
    write_examples(directory)
    return directory


def test_check_manifests_plans_the_examples(tmp_path: Path) -> None:
    desired, problems = check_manifests(_examples(tmp_path), PlanConfig())
    assert problems == [] and desired is not None
    assert {w.strategy for w in desired.workers} == {"momentum-demo", "mean-reversion-demo"}


def test_check_manifests_names_file_resource_and_field(tmp_path: Path) -> None:
    directory = _examples(tmp_path)
    momentum = directory / "momentum.yaml"
    momentum.write_text(momentum.read_text().replace("threshold:", "threshhold:"))
    profile = directory / "risk-profile.yaml"
    profile.write_text(profile.read_text().replace("maxDailyLoss: 25000", "maxDailyLoss: -1"))
    desired, problems = check_manifests(directory, PlanConfig())
    assert desired is None
    assert Problem("TradingStrategy default/momentum-demo", "spec.params.threshhold",
                   "unknown field (misspelt?)", str(momentum)) in problems
    [loss] = [p for p in problems if p.field == "spec.maxDailyLoss"]
    assert loss.file == str(profile) and loss.resource == "RiskProfile default/paper-default"


def test_a_missing_risk_profile_and_a_duplicate(tmp_path: Path) -> None:
    directory = _examples(tmp_path)
    (directory / "risk-profile.yaml").unlink()
    shutil.copy(directory / "momentum.yaml", directory / "copy.yaml")
    _, problems = check_manifests(directory, PlanConfig())
    fields = sorted((p.resource, p.field) for p in problems)
    assert ("TradingStrategy default/momentum-demo", "metadata.name") in fields
    assert ("TradingStrategy default/momentum-demo", "spec.riskProfileRef") in fields
    assert ("TradingStrategy default/mean-reversion-demo", "spec.riskProfileRef") in fields


def test_a_strategy_with_no_ticks_in_the_replay_is_refused(tmp_path: Path) -> None:
    directory = _examples(tmp_path)
    scan, problems = scan_replay(directory / "ticks" / "demo.csv")
    assert problems == [] and scan is not None
    assert scan.symbols == {"RELIANCE", "INFY", "SBIN"}
    desired, problems = check_manifests(directory, PlanConfig(), known_instruments=scan.symbols)
    assert desired is not None  # some instruments of each are in the file
    momentum = directory / "momentum.yaml"
    momentum.write_text(momentum.read_text().replace("[RELIANCE, TCS, INFY, SBIN]", "[TCS]"))
    _, problems = check_manifests(directory, PlanConfig(), known_instruments=scan.symbols)
    assert [(p.field, "TCS" in p.message) for p in problems] == [("spec.instruments", True)]


def test_an_unreadable_replay_file(tmp_path: Path) -> None:
    _, problems = scan_replay(tmp_path / "none.csv")
    assert problems[0].file == str(tmp_path / "none.csv") and "cannot open" in problems[0].message
    bad = tmp_path / "bad.csv"
    bad.write_text("time,sym\n1,2\n")
    _, problems = scan_replay(bad)
    assert problems[0].field == "line 1" and "header" in problems[0].message


def test_up_refuses_before_any_server_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _examples(tmp_path)
    (directory / "momentum.yaml").write_text(
        (directory / "momentum.yaml").read_text().replace("strategy: momentum", "strategy: x"))
    monkeypatch.setenv("ALPHASPT_LOCAL__STATE_DIR", str(tmp_path / "state"))
    assert main(["up", "-f", str(directory)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "momentum.yaml: TradingStrategy default/momentum-demo: spec.strategy:" in err[0]
    assert not (tmp_path / "state").exists()


def test_up_outside_a_clone_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["up"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "alphaspt init DIR" in line


def test_init_writes_the_shipped_examples_and_never_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = example_files()
    assert set(shipped) == {"momentum.yaml", "mean-reversion.yaml", "risk-profile.yaml",
                            "ticks/demo.csv", "instruments.csv", "calendar/overrides.yaml"}
    assert shipped["momentum.yaml"] == (REPO / "examples" / "momentum.yaml").read_bytes()
    assert main(["init", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "ticks" / "demo.csv").exists()
    assert main(["init", str(tmp_path / "x")]) == 2
    assert "exists already" in capsys.readouterr().err
