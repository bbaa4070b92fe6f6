"""Parity: which stages keep state, and how they scale, is said in three places."""

from __future__ import annotations

import re
from pathlib import Path

from alphaspt.core.events import Topics
from alphaspt.workers import SHARED_STAGES
from alphaspt.workers.feature_engine import FeatureEngine
from alphaspt.workers.portfolio_manager import PortfolioManager
from alphaspt.workers.risk_manager import RiskManager
from alphaspt.workers.trading_engine import TradingEngine

REPO = Path(__file__).resolve().parents[3]
CLASSES = {c.stage: c for c in (FeatureEngine, RiskManager, TradingEngine, PortfolioManager)}


def test_changelog_stages_match_the_stage_classes() -> None:
    assert set(Topics.CHANGELOG_STAGES) == set(CLASSES)
    assert set(CLASSES) <= set(SHARED_STAGES)
    for stage, copartitioned in Topics.CHANGELOG_STAGES.items():
        assert CLASSES[stage].copartitioned is copartitioned, stage


def test_chart_lets_only_copartitioned_stages_scale_out() -> None:
    template = (REPO / "helm/alphaspt/templates/stages.yaml").read_text()
    match = re.search(r'\$singleReplica := list ((?:"[a-z-]+" ?)+)', template)
    assert match is not None
    single = set(re.findall(r'"([a-z-]+)"', match.group(1)))
    scalable = {s for s, co in Topics.CHANGELOG_STAGES.items() if co}
    assert single == set(SHARED_STAGES) - scalable
