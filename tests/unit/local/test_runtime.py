"""`alphaspt up`'s pure parts: manifests, validation before anything starts, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphaspt.cli import main
from alphaspt.core.config import Settings
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.local.runtime import LocalRuntime, UpOptions, load_manifests, redact

REPO = Path(__file__).resolve().parents[3]


def test_examples_parse_and_plan_two_strategies() -> None:
    manifests = load_manifests(REPO / "examples")
    kinds = sorted(m.kind for m in manifests)
    assert kinds == ["RiskProfile", "TradingStrategy", "TradingStrategy"]
    lines: list[str] = []
    runtime = LocalRuntime(Settings(), UpOptions(manifests=REPO / "examples"),
                           out=lines.append)
    desired = runtime._validate()
    assert {w.strategy for w in desired.workers} == {"momentum-demo", "mean-reversion-demo"}
    assert all(w.replicas == 1 for w in desired.workers)


def test_multi_document_files_and_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
        "apiVersion: alphaspt.io/v1alpha1\nkind: RiskProfile\nmetadata: {name: p}\nspec: {}\n"
        "---\n# just a comment\n")
    (tmp_path / "notes.txt").write_text("kind: ignored")
    assert [m.kind for m in load_manifests(tmp_path)] == ["ConfigMap", "RiskProfile"]


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(InvalidConfiguration, match=r"bad\.yaml"):
        load_manifests(tmp_path)


def test_invalid_spec_is_refused_before_any_server_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: alphaspt.io/v1alpha1\nkind: TradingStrategy\nmetadata: {name: x}\n"
        "spec: {strategy: momentum, instruments: [lower], riskProfileRef: p}\n")
    assert main(["up", "-f", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "not NSE trading symbols: ['lower']" in captured.err
    assert "starting" not in captured.out


def test_missing_directory_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "-f", "/nonexistent/manifests"]) == 2
    assert "pass -f DIR" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+asyncpg://app:s3cret@db:5432/x", "postgresql+asyncpg://app:***@db:5432/x"),
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    ("kafka:9092", "kafka:9092"),
])
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_kite_settings_reach_the_workers_but_not_the_api_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("ALPHASPT_KITE__API_KEY", "key1")
    monkeypatch.setenv("ALPHASPT_KITE__API_SECRET", "do-not-pass")
    monkeypatch.setenv("ALPHASPT_KITE__API_ROOT", "https://kite.example")
    settings = Settings(local={"state_dir": tmp_path})
    runtime = LocalRuntime(settings, UpOptions(), out=lambda _: None)
    runtime.urls = {"kafka": "k:1", "postgres": "p", "redis": "r"}
    env = runtime._child_env()
    assert env["ALPHASPT_KITE__API_KEY"] == "key1"
    assert env["ALPHASPT_KITE__API_ROOT"] == "https://kite.example"
    assert "ALPHASPT_KITE__API_SECRET" not in env
    assert env["ALPHASPT_KITE__TOKEN_FILE"] == str(tmp_path.resolve() / "kite-token.json")


def test_kite_sim_runs_the_strategies_live() -> None:
    runtime = LocalRuntime(Settings(), UpOptions(manifests=REPO / "examples", kite_sim=True),
                           out=lambda _: None)
    desired = runtime._check()
    assert not isinstance(desired, list), desired
    assert {s.spec.mode.value for s in desired.strategies} == {"Live"}
    assert all(s.spec.broker_secret_ref is not None for s in desired.strategies)
