"""The control commands' pure parts: what each one publishes, what status prints."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from alphaspt.core.events import Command
from alphaspt.core.views import PositionView, StrategyView, TotalsView
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.local.control import Order, orders_for, status_lines
from alphaspt.local.state import find_up, redact, without_password, write_private


def test_orders_of_each_command() -> None:
    assert orders_for("pause", "m") == [Order(Command.PAUSE, "TradingStrategy", "m")]
    assert orders_for("resume", "m") == [Order(Command.RESUME, "TradingStrategy", "m")]
    assert orders_for("kill") == [Order(Command.KILL_SWITCH, "*", "*", True)]
    assert orders_for("kill", flatten=True) == [Order(Command.KILL_SWITCH, "*", "*", True),
                                                Order(Command.FLATTEN, "*", "*")]
    assert orders_for("kill", off=True) == [Order(Command.KILL_SWITCH, "*", "*", False)]
    with pytest.raises(InvalidConfiguration):
        orders_for("kill", off=True, flatten=True)


def test_state_files_are_private_and_name_a_live_up(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="no alphaspt up is running"):
        find_up(tmp_path)
    write_private(tmp_path / "up.json", {"pid": os.getpid(), "started_at": time.time() - 75,
                                        "manifests": "/m", "api": "http://127.0.0.1:8000"})
    assert (tmp_path / "up.json").stat().st_mode & 0o777 == 0o600
    up = find_up(tmp_path)
    assert up.pid == os.getpid() and up.status() == {}
    write_private(tmp_path / "status.json", {
        "updated_at": time.time(),
        "strategies": [{"name": "m", "strategy": "momentum", "desired_state": "Paused",
                        "risk_profile": "p"}],
        "risk_profiles": [{"name": "p", "kill_switch": True}],
        "workers": [{"name": "risk-manager", "pid": 42, "alive": True, "restarts": 1,
                     "lag": 7, "reason": "no checkpoint for 12 s"},
                    {"name": "strategy-m", "pid": None, "alive": False, "restarts": 0,
                     "lag": 0, "reason": None}]})
    view = StrategyView(name="m", orders=3, fills=2, rejections=1, net_pnl=-12.5,
                        positions=(PositionView(symbol="TCS", quantity=-10, avg_price=1,
                                                last_price=1, realised_pnl=0,
                                                unrealised_pnl=0),))
    lines = status_lines(up, ([view], TotalsView(orders=3, fills=2, rejections=1,
                                                  net_pnl=-12.5)))
    text = "\n".join(lines)
    assert "up 1m15s" in lines[0]
    assert any(line.startswith("m ") and "Paused" in line and "-12.50" in line
               and "TCS -10" in line for line in lines), text
    assert "kill switch in the manifests: p" in text
    assert any(line.startswith("risk-manager") and "stalled" in line
               and "no checkpoint for 12 s" in line for line in lines), text
    assert any(line.startswith("strategy-m") and " down " in line for line in lines), text
    assert "portfolio: Redis unavailable" in "\n".join(status_lines(up, "Redis unavailable"))


def test_urls_in_files_and_on_the_console_never_carry_a_password() -> None:
    assert without_password("redis://:pw@h:6379/0") == "redis://h:6379/0"
    assert without_password("postgresql://u:pw@h/db") == "postgresql://u@h/db"
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
