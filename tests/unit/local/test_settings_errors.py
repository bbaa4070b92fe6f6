"""Bad settings: one line naming the variable (or file and key), exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphaspt.cli import main, version
from alphaspt.core.config import _describe, env_name, load_settings
from alphaspt.exceptions import InvalidConfiguration


@pytest.fixture(autouse=True)
def _no_settings_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHASPT_SETTINGS_FILE", "/nonexistent/settings.toml")


@pytest.mark.parametrize(("name", "value", "says"), [
    ("ALPHASPT_API__PORT", "abc", "valid integer"),
    ("ALPHASPT_API__PORT", "70000", "less than or equal to 65535"),
    ("ALPHASPT_CLOCK", "sometimes", "'wall' or 'event'"),
    ("ALPHASPT_LOCAL__KAFKA", "redpanda", "'tansu' or 'apache'"),
    ("ALPHASPT_API__CORS_ORIGINS", "not-json", "cannot parse"),
])
def test_a_bad_variable_is_named_on_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        name: str, value: str, says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidConfiguration, match=name):
        load_settings()
    assert main(["status"]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"alphaspt: error: {name}: ") and says in line, line
    assert "Traceback" not in captured.err


def test_a_secret_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHASPT_API__TOKEN", "s3cret")
    line = _describe(("api", "token"), "Input should be a valid string", "s3cret")
    assert line.startswith("ALPHASPT_API__TOKEN: ") and "s3cret" not in line
    assert "'x'" in _describe(("kafka", "partitions"), "bad", "x")


def test_a_bad_value_in_the_settings_file_names_file_and_key(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text("[api]\nport = \"abc\"\n")
    monkeypatch.setenv("ALPHASPT_SETTINGS_FILE", str(toml))
    with pytest.raises(InvalidConfiguration, match=rf"{toml}: api\.port: "):
        load_settings()
    toml.write_text("[api\n")
    with pytest.raises(InvalidConfiguration, match=rf"{toml}: cannot read settings"):
        load_settings()


def test_env_name() -> None:
    assert env_name(("kafka", "bootstrap_servers")) == "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"alphaspt {version()}"
    assert version()[0].isdigit()
