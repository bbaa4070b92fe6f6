"""Typed, versioned events of the whole flow, and the one place that names every topic.

Events are ``msgspec.Struct`` values, frozen, encoded as JSON on the wire. msgspec was
chosen by measurement (``bench/bench_serialization.py``): it encodes and decodes a Tick,
with full type validation on decode, several times faster than pydantic v2.

Every event carries:
- ``event_id``: stable, deterministic where a replay must produce the same id (signals,
  orders, fills), so consumers can de-duplicate;
- ``exchange_ts``: when the market event happened (epoch nanoseconds, from the feed);
- ``ingest_ts``: when this event was created by our pipeline (epoch nanoseconds), so
  tick→fill latency can be traced end to end;
- ``v``: the schema version of the event type.
"""

from __future__ import annotations

import hashlib
import time
from enum import StrEnum
from typing import Final, Generic, TypeVar

import msgspec

now_ns: Final = time.time_ns
"""The wall clock in epoch ns (the builtin itself: stamped on every event, and a Python
function around it was a frame per event)."""


def stable_id(*parts: object) -> str:
    """A deterministic id from its parts: the same inputs always give the same id."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=12)
    return digest.hexdigest()


class Topics:
    """Every topic of the pipeline. Dead letters go to ``<topic>.dlq``."""

    TICKS: Final = "market.ticks"
    FEATURES: Final = "market.features"
    SIGNALS_GENERATED: Final = "trading.signals.generated"
    SIGNALS_VALIDATED: Final = "trading.signals.validated"
    SIGNALS_REJECTED: Final = "trading.signals.rejected"
    ORDERS_SUBMITTED: Final = "orders.submitted"
    ORDERS_FILLED: Final = "orders.filled"
    ORDERS_REJECTED: Final = "orders.rejected"
    CONTROL: Final = "control.commands"
    CHANGELOG_CONFIG: Final = {
        "cleanup.policy": "compact",
        # A record lives an hour before compaction may drop it: a restore always follows a
        # crash within seconds, long before an orphaned value could shadow a committed one.
        "min.compaction.lag.ms": "3600000",
        "segment.ms": "3600000",
    }
    """Config of every changelog topic (see ``alphaspt.core.streaming.changelog``)."""
    CHANGELOG_STAGES: Final = {
        "feature-engine": True,
        "risk-manager": False,
        "trading-engine": False,
        "portfolio-manager": False,
    }
    """The shared stages that keep state: stage → co-partitioned (one changelog partition
    per input partition, replicas split them) or single-task (one partition, one replica)."""

    ALL: Final = (
        TICKS,
        FEATURES,
        SIGNALS_GENERATED,
        SIGNALS_VALIDATED,
        SIGNALS_REJECTED,
        ORDERS_SUBMITTED,
        ORDERS_FILLED,
        ORDERS_REJECTED,
        CONTROL,
    )

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"

    @staticmethod
    def changelog(stage: str, namespace: str = "default") -> str:
        """Compacted: a shared stage's per-key state, one partition per task. Per namespace,
        like the stage's consumer group: two pipelines never share a changelog."""
        return f"alphaspt.{namespace}.{stage}.changelog"

    @staticmethod
    def strategy_state(strategy: str) -> str:
        """Compacted: a strategy runner's per-key state (its changelog)."""
        return f"strategy.{strategy}.state"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class Product(StrEnum):
    """Kite's products: what the exchange and the broker let a position do."""

    MIS = "MIS"
    """Intraday (margin intraday square-off): squared off before the close, never carried."""
    CNC = "CNC"
    """Equity delivery: no short sales beyond holdings; positions carry over as holdings."""
    NRML = "NRML"
    """Futures and options carried overnight."""


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of every event. ``gc=False``: an event holds only scalars and frozen structs,
    so it can never be part of a reference cycle, and the collector need not track the
    hundreds of thousands a stage creates per minute."""

    event_id: str
    exchange_ts: int
    ingest_ts: int = msgspec.field(default_factory=now_ns)
    v: int = 1


class Tick(Event, frozen=True, kw_only=True):
    """A trade print for one instrument (``symbol`` is the NSE trading symbol)."""

    symbol: str
    exchange: str = "NSE"
    price: float
    quantity: int = 0
    """Last traded quantity."""
    volume: int = 0
    """Cumulative traded volume of the day."""
    bid: float | None = None
    ask: float | None = None


class Features(Event, frozen=True, kw_only=True):
    """Rolling per-instrument features computed from ticks."""

    symbol: str
    price: float
    tick_id: str
    count: int
    ret: float
    ema_fast: float
    ema_slow: float
    mean: float
    std: float
    zscore: float
    vwap: float
    volatility: float


class Signal(Event, frozen=True, kw_only=True):
    """A strategy's wish to trade. ``event_id`` is deterministic (strategy, symbol, trigger)."""

    strategy: str
    symbol: str
    side: Side
    quantity: int
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    ref_price: float
    product: Product = Product.MIS
    """The price the strategy saw when it decided."""
    reason: str = ""


class RiskReason(StrEnum):
    OK = "OK"
    KILL_SWITCH = "KILL_SWITCH"
    PAUSED = "PAUSED"
    UNKNOWN_STRATEGY = "UNKNOWN_STRATEGY"
    NO_RISK_PROFILE = "NO_RISK_PROFILE"
    INSTRUMENT_NOT_ALLOWED = "INSTRUMENT_NOT_ALLOWED"
    OUTSIDE_TRADING_WINDOW = "OUTSIDE_TRADING_WINDOW"
    MAX_ORDER_QUANTITY = "MAX_ORDER_QUANTITY"
    MAX_ORDER_VALUE = "MAX_ORDER_VALUE"
    PRICE_BAND = "PRICE_BAND"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    MAX_POSITION = "MAX_POSITION"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_DAILY_LOSS = "MAX_DAILY_LOSS"
    ORDER_RATE_SECOND = "ORDER_RATE_SECOND"
    ORDER_RATE_MINUTE = "ORDER_RATE_MINUTE"
    INVALID_SIGNAL = "INVALID_SIGNAL"
    MARKET_CLOSED = "MARKET_CLOSED"
    """Not an NSE trading day (weekend, holiday) or outside the session."""
    PRODUCT_CUTOFF = "PRODUCT_CUTOFF"
    """A risk-increasing MIS order at or after the RiskProfile's ``misCutoff``."""
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    TICK_SIZE = "TICK_SIZE"
    LOT_SIZE = "LOT_SIZE"
    CIRCUIT_LIMIT = "CIRCUIT_LIMIT"
    SHORT_SELL = "SHORT_SELL"
    """A CNC sell beyond holdings."""
    ORDER_RATE_DAY = "ORDER_RATE_DAY"


class RiskDecision(Event, frozen=True, kw_only=True):
    """The risk manager's verdict on one signal; ``event_id`` equals the signal's id."""

    signal: Signal
    approved: bool
    reason: RiskReason
    message: str
    risk_profile: str | None = None


class OrderStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    FILLED = "FILLED"
    REJECTED = "REJECTED"


class Order(Event, frozen=True, kw_only=True):
    """An order sent to a broker. ``client_order_id`` derives from the signal id."""

    client_order_id: str
    signal_id: str
    strategy: str
    symbol: str
    side: Side
    quantity: int
    order_type: OrderType
    limit_price: float | None = None
    mode: str = "Paper"
    broker_order_id: str | None = None
    product: Product = Product.MIS


class Charges(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    brokerage: float = 0.0
    stt: float = 0.0
    exchange_txn: float = 0.0
    sebi: float = 0.0
    stamp_duty: float = 0.0
    gst: float = 0.0
    dp: float = 0.0
    """Depository charge incl. its GST (delivery sells; on the ledger, not the contract note)."""

    @property
    def total(self) -> float:
        return round(
            self.brokerage + self.stt + self.exchange_txn + self.sebi + self.stamp_duty + self.gst
            + self.dp,
            2,
        )


class Fill(Event, frozen=True, kw_only=True):
    """An execution. ``trade_id`` is unique per execution; consumers de-duplicate on it."""

    trade_id: str
    client_order_id: str
    strategy: str
    symbol: str
    side: Side
    quantity: int
    price: float
    charges: Charges = Charges()
    signal_exchange_ts: int | None = None
    product: Product = Product.MIS
    """The exchange timestamp of the tick that caused the signal (tick→fill latency)."""


class OrderRejected(Event, frozen=True, kw_only=True):
    """An order refused by the broker, or a working order cancelled (``reason`` starts with
    ``cancelled: ``; ``side`` and ``quantity`` then give the unfilled quantity released)."""

    client_order_id: str
    signal_id: str
    strategy: str
    symbol: str
    reason: str
    side: Side | None = None
    quantity: int = 0
    """For a cancellation: the unfilled quantity cancelled (0 for a refusal)."""


CANCELLED_PREFIX: Final = "cancelled: "
"""``OrderRejected.reason`` of a cancelled working order (kill switch, flatten, square-off)."""


class Command(StrEnum):
    KILL_SWITCH = "KILL_SWITCH"
    """``value`` true engages, false releases. Target: a risk profile or ``*``."""
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    CONFIG_CHANGED = "CONFIG_CHANGED"
    """Workers reload their configuration from PostgreSQL."""
    FLATTEN = "FLATTEN"
    """Square off every open position of the target (``*``, a TradingStrategy or the
    strategies bound to a RiskProfile) with risk-reducing MARKET orders."""


class Control(Event, frozen=True, kw_only=True):
    command: Command
    target_kind: str = "*"
    """``TradingStrategy``, ``RiskProfile`` or ``*``."""
    target: str = "*"
    value: bool = True
    issued_by: str = ""


E = TypeVar("E", bound=Event)

_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


class Codec(Generic[E]):
    """Decodes one event type from JSON bytes; raises :class:`DecodeError` with a reason."""

    def __init__(self, event_type: type[E]) -> None:
        self.event_type = event_type
        self._decoder: msgspec.json.Decoder[E] = msgspec.json.Decoder(event_type)

    def decode(self, data: bytes | None) -> E:
        if data is None:
            raise DecodeError("empty message value")
        try:
            return self._decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"{self.event_type.__name__}: {exc}") from exc


class DecodeError(ValueError):
    """A message that is not a valid event of the expected type."""


TOPIC_TYPES: Final[dict[str, type[Event]]] = {
    Topics.TICKS: Tick,
    Topics.FEATURES: Features,
    Topics.SIGNALS_GENERATED: Signal,
    Topics.SIGNALS_VALIDATED: RiskDecision,
    Topics.SIGNALS_REJECTED: RiskDecision,
    Topics.ORDERS_SUBMITTED: Order,
    Topics.ORDERS_FILLED: Fill,
    Topics.ORDERS_REJECTED: OrderRejected,
    Topics.CONTROL: Control,
}
"""The event type carried by each topic."""


def codec_for(topic: str) -> Codec[Event]:
    return Codec(TOPIC_TYPES[topic])
