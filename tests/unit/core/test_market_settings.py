"""Settings of the exchange's rules and the account's caps, as the workers read them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from alphaspt.core.config import AccountRiskConfig, MarketConfig, Settings


def test_defaults_are_nse_calendar_and_kites_caps() -> None:
    s = Settings()
    assert s.market.calendar == "XBOM" and s.market.instruments_file is None
    assert (s.risk.account_max_orders_per_second, s.risk.account_max_orders_per_minute,
            s.risk.account_max_orders_per_day) == (10, 400, 5000)


def test_environment_nested_and_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALPHASPT_SETTINGS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("ALPHASPT_MARKET__CALENDAR", "")
    monkeypatch.setenv("ALPHASPT_MARKET__INSTRUMENTS_FILE", "/x/instruments.csv")
    monkeypatch.setenv("ALPHASPT_RISK__ACCOUNT_MAX_ORDERS_PER_DAY", "3000")
    s = Settings()
    assert s.market.calendar is None
    assert s.market.instruments_file == Path("/x/instruments.csv")
    assert s.risk.account_max_orders_per_day == 3000
    # how `alphaspt up` hands them to its workers
    monkeypatch.delenv("ALPHASPT_MARKET__CALENDAR")
    monkeypatch.delenv("ALPHASPT_MARKET__INSTRUMENTS_FILE")
    monkeypatch.delenv("ALPHASPT_RISK__ACCOUNT_MAX_ORDERS_PER_DAY")
    market = MarketConfig(calendar="XBOM", instruments_file=Path("/abs/i.csv"))
    risk = AccountRiskConfig(account_max_orders_per_minute=None)
    monkeypatch.setenv("ALPHASPT_MARKET", market.model_dump_json())
    monkeypatch.setenv("ALPHASPT_RISK", risk.model_dump_json())
    s = Settings()
    assert s.market == market and s.risk == risk


def test_exchange_per_second_ceiling() -> None:
    with pytest.raises(ValidationError):
        AccountRiskConfig(account_max_orders_per_second=11)
