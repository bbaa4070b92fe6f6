"""The one place that wires each stream stage from the settings.

``run_stage(name, settings, options)`` is what ``alphaspt worker STAGE`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alphaspt.core.cache import PortfolioCacheWriter
from alphaspt.core.config import Settings
from alphaspt.core.events import Topics
from alphaspt.core.health import Health, serve_health
from alphaspt.core.streaming import EventProducer
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.workers import STAGES
from alphaspt.workers.common import ConfigSource, require_database, require_kafka, stage_config
from alphaspt.workers.feature_engine import FeatureEngine
from alphaspt.workers.market_feed import FeedConfig, MarketFeed
from alphaspt.workers.portfolio_manager import PortfolioManager
from alphaspt.workers.risk_manager import RiskManager
from alphaspt.workers.strategy_runner import StrategyRunner
from alphaspt.workers.trading_engine import TradingEngine


@dataclass(frozen=True)
class WorkerOptions:
    strategy: str | None = None
    feed: str = "mock"
    replay: Path | None = None
    speed: float | None = None
    interval: float = 0.25
    seed: int | None = None
    kite_mode: Literal["quote", "full"] = "quote"


def run_stage(stage: str, settings: Settings, options: WorkerOptions) -> None:
    """Build the stage from ``settings`` and run it until SIGTERM/SIGINT."""
    require_kafka(settings)
    health = Health()
    serve_health(settings.metrics, health)
    source = ConfigSource(require_database(settings), settings.namespace)
    if stage == "market-feed":
        feed = MarketFeed(settings, source, EventProducer(settings.kafka), FeedConfig(
            kind=options.feed, replay_path=options.replay, speed=options.speed,
            interval_s=options.interval, seed=options.seed, kite_mode=options.kite_mode))
        feed.health = health
        feed.install_signal_handlers()
        feed.run()
        return
    if stage == "feature-engine":
        processor: FeatureEngine | StrategyRunner | RiskManager | TradingEngine | PortfolioManager
        processor = FeatureEngine(settings, stage_config(settings, stage))
    elif stage == "strategy-runner":
        if not options.strategy:
            raise InvalidConfiguration("strategy-runner needs --strategy NAME")
        name = options.strategy
        # Small polls: features held back for an open signal stay within one poll.
        processor = StrategyRunner(settings, stage_config(
            settings, f"strategy-{name}", changelog_topic=Topics.strategy_state(name),
            batch_size=200), source, name)
    elif stage == "risk-manager":
        processor = RiskManager(settings, stage_config(settings, stage), source)
    elif stage == "trading-engine":
        processor = TradingEngine(settings, stage_config(settings, stage), source)
    elif stage == "portfolio-manager":
        if settings.redis.url is None:
            raise InvalidConfiguration("portfolio-manager needs ALPHASPT_REDIS__URL")
        writer = PortfolioCacheWriter.from_url(settings.redis.url.get_secret_value())
        processor = PortfolioManager(settings, stage_config(settings, stage), source, writer)
    else:
        raise InvalidConfiguration(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    processor.health = health
    processor.install_signal_handlers()
    processor.run()
