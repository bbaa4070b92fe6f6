"""Portfolio manager: fills, orders, rejections and ticks → the Redis read model.

The ledger (positions, average prices, realised/unrealised P&L, charges, counts) is pure
(:mod:`alphaspt.portfolio.ledger`); its keys (``Ledger.export``) are the stage's changelog:
one ``pf/<strategy>`` book, one ``px/<symbol>`` mark, and one key per seen trade, order and
rejected signal, forgotten once the IST day before yesterday is over (bounded by two days of
events; the counts stay). Redis is written *after* each checkpoint: a snapshot of every
strategy (the seed's ``HSET portfolio:<strategy> position:<SYMBOL> <qty>`` plus summary
fields, atomically in MULTI/EXEC) at most every ``publish_interval`` seconds, and the recent
orders/fills/rejections lists, and one price point per symbol per second of exchange time
(``prices:<symbol>``, for the dashboard's price chart). The Redis snapshot is derived state,
so rewriting it is idempotent; if Redis is down the stage keeps consuming and writes the
current snapshot once it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import redis

from alphaspt.core.cache import PortfolioCacheWriter, StrategyView
from alphaspt.core.clock import ist_day
from alphaspt.core.config import Settings
from alphaspt.core.events import (
    Codec,
    Command,
    Control,
    Event,
    Fill,
    Order,
    OrderRejected,
    RiskDecision,
    Tick,
    Topics,
)
from alphaspt.core.streaming import Output, ProcessorConfig
from alphaspt.core.views import PricePoint
from alphaspt.portfolio.ledger import Ledger
from alphaspt.workers.common import ConfigSource, ConfiguredStage

log = logging.getLogger(__name__)


class PortfolioManager(ConfiguredStage):
    stage = "portfolio-manager"

    def __init__(self, settings: Settings, config: ProcessorConfig, source: ConfigSource,
                 writer: PortfolioCacheWriter, *, publish_interval: float = 0.25) -> None:
        super().__init__(settings, config, {
            Topics.ORDERS_FILLED: Codec(Fill),
            Topics.ORDERS_SUBMITTED: Codec(Order),
            Topics.ORDERS_REJECTED: Codec(OrderRejected),
            Topics.SIGNALS_REJECTED: Codec(RiskDecision),
            Topics.TICKS: Codec(Tick),
        }, source)
        self.writer = writer
        self.publish_interval = publish_interval
        self.ledger = Ledger(self.pipeline.strategies)
        self._records: list[tuple[str, str, dict[str, Any]]] = []
        self._dirty = True
        self._last_publish = 0.0
        self.day = 0
        self._price_second: dict[str, int] = {}
        """Per symbol: the exchange second of its last price point (bounded by symbols)."""
        self._prices: list[tuple[str, PricePoint]] = []
        self._killed: set[str] = set()
        """Kill-switch targets engaged on ``control.commands`` since start-up (``*`` or a
        profile), shown on the dashboard with the profiles' own ``killSwitch``."""

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        day = ist_day(event.exchange_ts)
        if day > self.day:
            self.day = day
            for key in self.ledger.prune(day - 1):
                self.touch(key)
        if isinstance(event, Tick):
            self.ledger.mark(event.symbol, event.price)
            self.touch(f"px/{event.symbol}")
            self._dirty = True
            second = event.exchange_ts // 1_000_000_000
            if self._price_second.get(event.symbol) != second:
                self._price_second[event.symbol] = second
                self._prices.append((event.symbol, PricePoint(float(second), event.price)))
            return ()
        assert isinstance(event, Fill | Order | OrderRejected | RiskDecision)
        if self.ledger.apply(event):
            kind, strategy, ident = _seen_key(event)
            self.touch(f"pf/{strategy}")
            self.touch(f"{kind}/{strategy}/{ident}")
            self._dirty = True
            self._records.append(_record(event))
        return ()

    def on_control(self, control: Control) -> Iterable[Output]:
        if control.command is Command.KILL_SWITCH:
            (self._killed.add if control.value else self._killed.discard)(control.target)
            self._dirty = True
        return ()

    def on_idle(self) -> Iterable[Output]:
        """Between batches everything applied is committed: write what the throttle held
        back, so the read model catches up when the stream goes quiet."""
        self.after_commit()
        return ()

    def after_commit(self) -> None:
        if not self.owns_state:
            return  # restoring (or lost the task): the ledger is not the committed one
        if not self._dirty and not self._records:
            return
        if time.monotonic() - self._last_publish < self.publish_interval and not self._records:
            return
        try:
            for kind, strategy, record in self._records:
                self.writer.record(kind, strategy, record)
            self._records.clear()
            self.writer.write_snapshot(self.views())
            self.writer.prices(self._prices)
            self._prices.clear()
        except redis.RedisError as exc:
            log.warning("Redis write failed (%s); will retry after the next batch", exc)
            return
        self._dirty = False
        self._last_publish = time.monotonic()

    def views(self) -> list[StrategyView]:
        now = time.time()
        views = []
        for snap in self.ledger.snapshots():
            record = self.pipeline.strategies.get(snap.name)
            profile = self.pipeline.profiles.get(record.spec.risk_profile_ref) if record else None
            limits = profile.spec if profile else None
            views.append(msgspec.structs.replace(
                snap,
                mode=record.spec.mode.value if record else "Paper",
                state=record.spec.desired_state.value if record else "Unknown",
                updated_at=now,
                risk_profile=record.spec.risk_profile_ref if record else "",
                max_daily_loss=limits.max_daily_loss if limits else None,
                max_gross_exposure=limits.max_gross_exposure if limits else None,
                kill_switch=bool(limits and (limits.kill_switch or {"*", profile.name}
                                             & self._killed)) if profile else False,
            ))
        return views

    def state_value(self, task: int, key: str) -> bytes | None:
        return self.ledger.export(key)

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        self.ledger = Ledger.from_items(dict(items))
        for name in self.pipeline.strategies:
            self.ledger.portfolio(name)
        self._records.clear()  # records not yet checkpointed come again on the replay
        self._prices.clear()
        self._price_second.clear()
        self._dirty = True

    def drop_task(self, task: int) -> None:
        self.restore_task(task, {})


def _seen_key(event: Fill | Order | OrderRejected | RiskDecision) -> tuple[str, str, str]:
    if isinstance(event, Fill):
        return "t", event.strategy, event.trade_id
    if isinstance(event, Order):
        return "o", event.strategy, event.client_order_id
    if isinstance(event, OrderRejected):
        return "r", event.strategy, event.signal_id
    return "r", event.signal.strategy, event.signal.event_id


def _record(event: Fill | Order | OrderRejected | RiskDecision) -> tuple[str, str, dict[str, Any]]:
    if isinstance(event, RiskDecision):
        s = event.signal
        return "rejection", s.strategy, {
            "signal_id": s.event_id, "symbol": s.symbol, "side": s.side.value,
            "quantity": s.quantity, "reason": event.reason.value, "message": event.message,
            "ts": event.ingest_ts,
        }
    if isinstance(event, Fill):
        return "fill", event.strategy, {
            "status": "FILLED", "client_order_id": event.client_order_id,
            "trade_id": event.trade_id, "symbol": event.symbol, "side": event.side.value,
            "quantity": event.quantity, "price": event.price, "charges": event.charges.total,
            "ts": event.ingest_ts, "exchange_ts": event.exchange_ts,
        }
    if isinstance(event, Order):
        return "order", event.strategy, {
            "status": "SUBMITTED", "client_order_id": event.client_order_id,
            "symbol": event.symbol, "side": event.side.value, "quantity": event.quantity,
            "order_type": event.order_type.value, "limit_price": event.limit_price,
            "ts": event.ingest_ts,
        }
    return "order", event.strategy, {
        "status": "REJECTED", "client_order_id": event.client_order_id,
        "symbol": event.symbol, "reason": event.reason, "ts": event.ingest_ts,
    }
