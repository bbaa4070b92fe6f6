"""Kite settings: roots from the environment, the access token only from its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphaspt.core.config import KiteSettings, Settings
from alphaspt.exceptions import InvalidConfiguration


def test_roots_default_to_kites_and_follow_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().kite.api_root, Settings().kite.ticker_root) == (
        "https://api.kite.trade", "wss://ws.kite.trade")
    monkeypatch.setenv("ALPHASPT_KITE__API_ROOT", "http://127.0.0.1:1")
    monkeypatch.setenv("ALPHASPT_KITE__TICKER_ROOT", "ws://127.0.0.1:1/ws")
    kite = Settings().kite
    assert (kite.api_root, kite.ticker_root) == ("http://127.0.0.1:1", "ws://127.0.0.1:1/ws")


def test_access_token_from_its_file_or_a_line_saying_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="ALPHASPT_KITE__API_KEY is not set"):
        KiteSettings().access_token()
    with pytest.raises(InvalidConfiguration, match="run `alphaspt kite login`"):
        KiteSettings(api_key="k").access_token()
    missing = KiteSettings(api_key="k", access_token_file=tmp_path / "nope")
    with pytest.raises(InvalidConfiguration, match="cannot read the Kite access token file"):
        missing.access_token()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidConfiguration, match="is empty"):
        KiteSettings(api_key="k", access_token_file=tmp_path / "empty").access_token()
    (tmp_path / "token").write_text("abc123\n")
    token = KiteSettings(api_key="k", access_token_file=tmp_path / "token").access_token()
    assert token.get_secret_value() == "abc123" and "abc123" not in repr(token)
