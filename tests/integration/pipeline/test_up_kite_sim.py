"""``alphaspt up --kite-sim``: the example strategies trade Live on the Kite simulator."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.pipeline.conftest import REPO, Up

pytestmark = pytest.mark.integration


def test_up_kite_sim_sends_the_examples_orders_to_kite(
    run_up: Callable[..., Up], tmp_path: Path,
) -> None:
    up = run_up(REPO / "examples", "--kite-sim", "--for", "75")
    assert up.proc.wait(240) == 0, up.output()[-3000:]
    out = up.output()
    assert "kite-sim  API root http://127.0.0.1:" in out
    summary = re.search(r"kite-sim  (\d+) orders, (\d+) trades at the simulator", out)
    assert summary is not None, out[-3000:]
    orders, trades = int(summary[1]), int(summary[2])
    assert orders > 0 and trades > 0
    state = tmp_path / "state"
    engine = (state / "logs" / "trading-engine.log").read_text()
    placed = re.findall(r"kite: order (AP[0-9a-f]{18}) placed as \d+", engine)
    assert len(placed) == len(set(placed)) == orders
    token = json.loads((state / "kite-token.json").read_text())["access_token"]
    for log in [*(state / "logs").glob("*.log"), up.log]:
        assert token not in log.read_text(), log
