"""Kite settings: roots from the environment; the feed's token from the environment or the
daily login's file, or one line saying what to do."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from alphaspt.core.config import KiteConfig, Settings
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.feeds.kite import feed_credentials


def test_roots_default_to_kites_and_follow_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().kite.api_root, Settings().kite.ticker_root) == (
        "https://api.kite.trade", "wss://ws.kite.trade")
    monkeypatch.setenv("ALPHASPT_KITE__API_ROOT", "http://127.0.0.1:1")
    monkeypatch.setenv("ALPHASPT_KITE__TICKER_ROOT", "ws://127.0.0.1:1/ws")
    monkeypatch.setenv("ALPHASPT_KITE__ACCESS_TOKEN", "from-a-secret")
    kite = Settings().kite
    assert (kite.api_root, kite.ticker_root) == ("http://127.0.0.1:1", "ws://127.0.0.1:1/ws")
    assert "from-a-secret" not in repr(kite)


def test_feed_credentials_or_a_line_saying_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="ALPHASPT_KITE__API_KEY is not set"):
        feed_credentials(KiteConfig())
    with pytest.raises(InvalidConfiguration, match=r"no Kite access token.*kite login"):
        feed_credentials(KiteConfig(api_key="k"))
    assert feed_credentials(KiteConfig(api_key="k", access_token=SecretStr("env"))) == (
        "k", "env")
    with pytest.raises(InvalidConfiguration, match="cannot read the Kite token file"):
        feed_credentials(KiteConfig(api_key="k", token_file=tmp_path / "nope"))
    (tmp_path / "bad").write_text("not json")
    with pytest.raises(InvalidConfiguration, match="holds no access_token"):
        feed_credentials(KiteConfig(api_key="k", token_file=tmp_path / "bad"))
    token_file = tmp_path / "kite-token.json"
    token_file.write_text(json.dumps({"access_token": "abc123",
                                      "expires_at": "2026-12-03T06:00:00+05:30"}))
    config = KiteConfig(api_key="k", token_file=token_file)
    before = datetime(2026, 12, 3, 0, 29, tzinfo=UTC)  # 05:59 IST
    assert feed_credentials(config, before) == ("k", "abc123")
    with pytest.raises(InvalidConfiguration, match="expired at 2026-12-03T06:00:00\\+05:30"):
        feed_credentials(config, datetime(2026, 12, 3, 0, 30, tzinfo=UTC))
