"""The one place that wires each stream stage from the settings.

``run_stage(name, settings, options)`` is what ``alphaspt worker STAGE`` calls.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alphaspt.brokers.base import Broker
from alphaspt.brokers.kite import (
    KITE_TOKEN_FILE,
    AccountLimiter,
    FileTokenStore,
    KiteBroker,
    StaticToken,
    TokenStore,
)
from alphaspt.core.cache import PortfolioCacheWriter
from alphaspt.core.config import Settings
from alphaspt.core.events import Topics
from alphaspt.core.health import Health, serve_health, start_heartbeat
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


def kite_broker(settings: Settings) -> Callable[[], Broker] | None:
    """The live broker of the trading engine: one Kite account (``ALPHASPT_KITE__*``) for
    every Live strategy of this engine, so its order limits are shared by all of them;
    ``None`` without an API key (Live orders are then refused with a reason)."""
    kite = settings.kite
    if not kite.api_key:
        return None
    limiter = AccountLimiter(kite.orders_per_second, kite.orders_per_minute,
                             kite.orders_per_day)
    tokens: TokenStore
    if kite.access_token is not None:
        tokens = StaticToken(kite.access_token.get_secret_value(), kite.access_token_expires)
    else:
        tokens = FileTokenStore(kite.token_file or settings.local.state_dir / KITE_TOKEN_FILE)
    return lambda: KiteBroker(kite, tokens, limiter)


def run_stage(stage: str, settings: Settings, options: WorkerOptions) -> None:
    """Build the stage from ``settings`` and run it until SIGTERM/SIGINT."""
    require_kafka(settings)
    health = Health()
    serve_health(settings.metrics, health)
    if settings.redis.url is not None:
        writer = PortfolioCacheWriter.from_url(settings.redis.url.get_secret_value())
        worker = f"{stage}/{options.strategy}" if stage == "strategy-runner" else stage
        start_heartbeat(health, worker, lambda view, first: writer.heartbeat(view, first=first))
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
        processor = TradingEngine(settings, stage_config(settings, stage), source,
                                  live_broker=kite_broker(settings))
    elif stage == "portfolio-manager":
        if settings.redis.url is None:
            raise InvalidConfiguration("portfolio-manager needs ALPHASPT_REDIS__URL")
        processor = PortfolioManager(settings, stage_config(settings, stage), source, writer)
    else:
        raise InvalidConfiguration(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    processor.health = health
    processor.install_signal_handlers()
    gc.freeze()  # start-up objects leave the collector's generations (see bench/)
    processor.run()
