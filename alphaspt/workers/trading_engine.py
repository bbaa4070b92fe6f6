"""Trading engine: validated signals → orders at a broker → fills.

Each order's client id derives from its signal id (``client_order_id``), so a replayed or
redelivered signal can never become a second order: the broker answers a repeated client
id with the existing order, and the engine publishes nothing for it.

State (the stage's changelog): ``order/<client id>`` per book entry (open orders, and
finished ones until their IST day is over, so a late redelivery is still recognised),
``last/<symbol>`` the last tick applied per symbol (timestamp, ids at it, its partition),
and ``meta`` the current IST day.

Paper fills are decided in event time, independent of how ticks and signals interleave
and of restarts: an order fills on the first tick of its symbol *after* its signal's
exchange timestamp. When that tick was consumed before the order arrived (the usual case:
ticks come straight from the feed, signals three hops later), it is found in a per-symbol
cache of the ticks consumed since start-up, and when the cache does not reach back far
enough (after a restart, or a backlog) in the ticks topic itself (:class:`TickLog`), so
the answer is always the same.

The broker is chosen per strategy ``mode``: Paper orders go to the paper broker, Live
orders to the live broker (Kite, built by ``workers/registry.py`` from the ``kite``
settings; without them a Live strategy's orders are rejected with a reason saying so,
never silently dropped or paper-filled). Each broker saves and restores its own records
through the protocol (``export``/``load``; keys ``order/<id>`` paper, ``live/<id>`` live);
the live broker reconciles with its own order book before placing after a restore. Live
fills come from the broker's order book, polled on ticks and when idle.

Day orders: a paper order that has not filled on its IST day expires (an
``orders.rejected`` cancellation, :data:`~alphaspt.brokers.paper.EXPIRED`) at its symbol's
first tick of a later day, or at the roll after next; it never fills a day late.

Bounds: orders of the current IST day (open ones of the day before until they expire);
``last`` one key per symbol; the tick cache ``cache_size`` ticks per symbol and a sparse
index of offsets (8,192 per symbol), both memory only.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

import msgspec
from confluent_kafka import Consumer, KafkaError, TopicPartition

from alphaspt.brokers.base import Broker, cancellation, client_order_id
from alphaspt.brokers.paper import PaperBroker, PaperConfig
from alphaspt.core.clock import ist_day, ist_day_start
from alphaspt.core.config import KafkaConfig, Settings
from alphaspt.core.events import (
    CANCELLED_PREFIX,
    Codec,
    Command,
    Control,
    DecodeError,
    Event,
    Fill,
    Order,
    OrderRejected,
    OrderType,
    RiskDecision,
    Side,
    Tick,
    Topics,
    now_ns,
    stable_id,
)
from alphaspt.core.specs import Mode
from alphaspt.core.streaming import Output, ProcessorConfig
from alphaspt.exceptions import InfrastructureUnavailable
from alphaspt.market import instruments_from
from alphaspt.risk.squareoff import is_square_off
from alphaspt.workers.align import TickAlignment
from alphaspt.workers.common import ConfigSource, ConfiguredStage

log = logging.getLogger(__name__)


class LastTick(msgspec.Struct):
    ts: int
    ids: list[str]
    """Ids of the ticks at ``ts`` already applied (equal timestamps happen)."""
    partition: int

    def seen(self, tick: Tick) -> bool:
        return tick.exchange_ts < self.ts or (tick.exchange_ts == self.ts
                                              and tick.event_id in self.ids)


def advance(last: LastTick | None, tick: Tick, partition: int) -> LastTick | None:
    """The symbol's last tick after ``tick``, or ``None`` if ``tick`` was applied already
    (the one de-duplication rule of the engine and of its look-ups)."""
    if last is not None and last.seen(tick):
        return None
    if last is None or tick.exchange_ts > last.ts:
        return LastTick(tick.exchange_ts, [tick.event_id], partition)
    last.ids.append(tick.event_id)
    return last


class TickLog:
    """Reads back the ticks of one symbol from ``market.ticks`` (a partition's tail)."""

    def __init__(self, kafka: KafkaConfig, chunk: int = 200) -> None:
        self.kafka = kafka
        self.chunk = chunk
        self._consumer: Consumer | None = None
        self._codec = Codec(Tick)

    def ticks_after(self, symbol: str, partition: int, end: int, after_ts: int,
                    start: int | None = None) -> Iterator[Tick]:
        """The ticks of ``symbol`` with ``exchange_ts > after_ts`` among offsets
        ``[start, end)`` of the partition, in log order, duplicates dropped, read forward
        in chunks as the caller takes them (a market order needs only the first). Without
        ``start`` (no index entry reaches back far enough), chunks are read backwards from
        ``end`` until one begins at or before ``after_ts``."""
        if start is None:
            start = self._find_start(symbol, partition, end, after_ts)
        last: LastTick | None = None
        offset = start
        while offset < end:
            hi = min(end, offset + self.chunk)
            for tick in self._read(partition, offset, hi, symbol):
                if tick.symbol != symbol:
                    continue
                applied = advance(last, tick, partition)
                if applied is None:
                    continue
                last = applied
                if tick.exchange_ts > after_ts:
                    yield tick
            offset = hi

    def _find_start(self, symbol: str, partition: int, end: int, after_ts: int) -> int:
        start = end
        size = self.chunk
        while start > 0:
            lo = max(0, start - size)
            window = [t for t in self._read(partition, lo, start, symbol) if t.symbol == symbol]
            start = lo
            if window and window[0].exchange_ts <= after_ts:
                break
            size *= 2
        return start

    def _read(self, partition: int, lo: int, hi: int, symbol: str) -> list[Tick]:
        """Ticks of ``symbol`` at offsets ``[lo, hi)`` (by key: others are not decoded)."""
        key = symbol.encode()
        if self._consumer is None:
            self._consumer = Consumer({
                **self.kafka.client_config(),
                "group.id": f"alphaspt-ticklog-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            })
        consumer = self._consumer
        consumer.assign([TopicPartition(Topics.TICKS, partition, lo)])
        out: list[Tick] = []
        offset = lo
        idle = 0
        while offset < hi and idle < 50:
            msgs = consumer.consume(min(5000, hi - offset), 0.1)
            if not msgs:
                idle += 1
                continue
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise InfrastructureUnavailable(f"reading {Topics.TICKS}: {err}")
                    continue
                offset = (msg.offset() or 0) + 1
                if offset > hi:
                    break
                if msg.key() != key:
                    continue
                try:
                    out.append(self._codec.decode(msg.value()))
                except DecodeError:
                    continue
        if offset < hi:
            raise InfrastructureUnavailable(
                f"{Topics.TICKS}[{partition}] offsets {lo}..{hi} could not be read back")
        return out


class TradingEngine(ConfiguredStage):
    stage = "trading-engine"

    def __init__(self, settings: Settings, config: ProcessorConfig, source: ConfigSource,
                 paper: PaperConfig | None = None, *, cache_size: int = 2048,
                 index_every: int = 16, align_s: float = 30.0,
                 tick_log: TickLog | None = None,
                 live_broker: Callable[[], Broker] | None = None) -> None:
        super().__init__(settings, config, {
            Topics.SIGNALS_VALIDATED: Codec(RiskDecision),
            Topics.TICKS: Codec(Tick),
        }, source)
        self.paper_config = paper or PaperConfig()
        self.instruments = instruments_from(settings.market)  # each symbol's tick
        self.broker = PaperBroker(self.paper_config, instruments=self.instruments)
        self.live_broker = live_broker
        self.live: Broker | None = live_broker() if live_broker is not None else None
        self.cache_size = cache_size
        self.tick_log = tick_log or TickLog(settings.kafka)
        self.recent: dict[str, deque[Tick]] = {}
        self.index_every = index_every
        self.index: dict[str, deque[tuple[int, int]]] = {}
        """Per symbol, every ``index_every``-th tick's (timestamp, offset): where to start
        reading the ticks topic back (8,192 entries per symbol at most)."""
        self._seen: dict[str, int] = {}
        self.last: dict[str, LastTick] = {}
        self.positions: dict[str, dict[str, int]] = {}
        """Strategy → symbol → net filled quantity of this engine's own fills (changelog
        ``pos/<strategy>``; flat symbols dropped): what a square-off closes, exactly."""
        self.days: dict[int, int] = {}
        """The IST day of each ticks partition (its latest tick's; changelog ``meta``)."""
        self.day_floor = 0
        """The day of partitions not in ``days`` (a ``meta`` record of one day for all)."""
        self.lookups = 0
        self.align = TickAlignment(self, Topics.SIGNALS_VALIDATED, ahead_s=align_s)
        """So the first tick after an order is usually still in the cache."""

    def on_event(self, topic: str, event: Event) -> Iterable[Output]:
        if isinstance(event, Tick):
            return self._on_tick(event)
        assert isinstance(event, RiskDecision)
        if not event.approved:
            return ()
        return self._place(event)

    def on_idle(self) -> Iterable[Output]:
        self.align.on_idle()
        return self._live_results(self.live.poll()) if self.live is not None else ()

    def _live_results(self, results: list[Fill | OrderRejected]) -> list[Output]:
        if self.live is not None:
            self.health.alert("live-broker", self.live.alert or None)
        for r in results:
            self.touch(f"live/{r.client_order_id}")
        return [self._result(r) for r in results]

    def _on_tick(self, tick: Tick) -> list[Output]:
        self.align.on_tick(tick.exchange_ts)
        last = advance(self.last.get(tick.symbol), tick, self.current_partition)
        if last is None:
            return []
        self.last[tick.symbol] = last
        self.touch(f"last/{tick.symbol}")
        recent = self.recent.get(tick.symbol)
        if recent is None:
            recent = self.recent[tick.symbol] = deque(maxlen=self.cache_size)
            self.index[tick.symbol] = deque(maxlen=8192)
        seen = self._seen[tick.symbol] = self._seen.get(tick.symbol, 0) + 1
        if seen % self.index_every == 1:
            offset = self.position(Topics.TICKS, self.current_partition)
            if offset is not None:
                self.index[tick.symbol].append((tick.exchange_ts, offset - 1))
        recent.append(tick)
        results: list[Fill | OrderRejected] = [*self._roll_day(tick.exchange_ts),
                                               *self.broker.on_tick(tick)]
        for r in results:
            self.touch(f"order/{r.client_order_id}")
        outputs = [self._result(r) for r in results]
        if self.live is not None:
            outputs += self._live_results(self.live.on_tick(tick))
        return outputs

    def _roll_day(self, ts: int) -> list[OrderRejected]:
        """A new IST day on this tick's partition: forget the finished orders of its
        symbols placed before that day, and expire their paper orders older than yesterday
        (a day order of yesterday expires at its symbol's next tick, in
        :meth:`PaperBroker.on_tick`; these are of symbols that did not tick since).

        The day is the partition's own, not the latest of all: partitions are consumed
        interleaved, so in a replay one can run days ahead of another (or hold an earlier
        run's later-dated ticks), and a global day taken from it expired orders that
        their own symbol's next tick, on their day, would have filled."""
        partition = self.current_partition
        day = ist_day(ts)
        if day <= self.days.get(partition, self.day_floor):
            return []
        self.days[partition] = day
        self.touch("meta")

        def owns(symbol: str) -> bool:  # a symbol not seen yet belongs to every partition
            last = self.last.get(symbol)
            return last is None or last.partition == partition

        expired = self.broker.expire(ist_day_start(day - 1), owns)
        for cid in self.broker.forget_finished(ist_day_start(day), owns):
            self.touch(f"order/{cid}")
        if self.live is not None:
            for cid in self.live.forget_finished(ist_day_start(day), owns):
                self.touch(f"live/{cid}")
        return expired

    def _place(self, decision: RiskDecision) -> list[Output]:
        signal = decision.signal
        self.align.on_lead(signal.exchange_ts)
        coid = client_order_id(signal.event_id)
        record = self.pipeline.strategies.get(signal.strategy)
        mode = record.spec.mode if record is not None else Mode.PAPER
        if is_square_off(signal.event_id) and mode is not Mode.LIVE:
            return self._square_off(decision, coid, mode)
        if mode is Mode.LIVE and self.live is None:
            rejected = OrderRejected(
                event_id=stable_id("live-unavailable", coid), exchange_ts=signal.exchange_ts,
                client_order_id=coid, signal_id=signal.event_id, strategy=signal.strategy,
                symbol=signal.symbol,
                reason="Live trading needs Kite: set ALPHASPT_KITE__API_KEY and log in "
                       "(alphaspt kite login)",
            )
            return [Output(Topics.ORDERS_REJECTED, signal.strategy, rejected)]
        order = Order(
            event_id=coid, exchange_ts=signal.exchange_ts, ingest_ts=now_ns(),
            client_order_id=coid, signal_id=signal.event_id, strategy=signal.strategy,
            symbol=signal.symbol, side=signal.side, quantity=signal.quantity,
            order_type=signal.order_type, limit_price=signal.limit_price, mode=mode.value,
            product=signal.product,
        )
        live = self.live if mode is Mode.LIVE else None
        ack = (live or self.broker).place(order)
        if ack.duplicate and not ack.recovered:
            log.info("signal %s already placed as %s; not placing again", signal.event_id, coid)
            return []
        self.touch(f"live/{coid}" if live is not None else f"order/{coid}")
        if ack.rejection is not None:
            return [Output(Topics.ORDERS_REJECTED, signal.strategy, ack.rejection)]
        outputs = [Output(Topics.ORDERS_SUBMITTED, signal.strategy, order)]
        if live is not None:
            return outputs + self._live_results(live.poll())
        return outputs + self._fill_at_once(order)

    def _fill_at_once(self, order: Order) -> list[Output]:
        """Fill a just-placed order on the ticks after its time already consumed."""
        outputs: list[Output] = []
        for tick in self._ticks_after(order.symbol, order.exchange_ts):
            results = self.broker.on_tick(tick, only=order.client_order_id)
            outputs += [self._result(r) for r in results]
            if results:
                break
        return outputs

    # -- cancellations and square-offs -------------------------------------------------

    def on_control(self, control: Control) -> Iterable[Output]:
        """Kill switch on: cancel the working orders of the strategies it covers (the risk
        manager refuses what increases risk from now on). FLATTEN: cancel the targets'
        working orders at once (the risk manager sends the closing orders)."""
        if control.command is Command.KILL_SWITCH and control.value and \
                control.target_kind in ("RiskProfile", "*"):
            return self._cancel_working(self._bound(control.target), "kill switch")
        if control.command is Command.CONFIG_CHANGED:
            outputs: list[Output] = []
            for name in sorted(self.pipeline.profiles):
                if self.pipeline.profiles[name].spec.kill_switch:
                    outputs += self._cancel_working(self._bound(name), "kill switch")
            return outputs
        if control.command is Command.FLATTEN:
            if control.target_kind == "TradingStrategy" and control.target != "*":
                targets: set[str] | None = {control.target}
            elif control.target_kind == "RiskProfile":
                targets = self._bound(control.target)
            else:
                targets = None
            return self._cancel_working(targets, "flatten")
        return ()

    def _bound(self, profile: str) -> set[str] | None:
        """The strategies bound to ``profile`` (``None``: every strategy, for ``*``)."""
        if profile == "*":
            return None
        return {n for n, r in self.pipeline.strategies.items()
                if r.spec.risk_profile_ref == profile}

    def _cancel_working(self, strategies: set[str] | None, why: str,
                        symbol: str | None = None) -> list[Output]:
        """Cancel the open orders of ``strategies`` (``None``: all), of one ``symbol`` if
        given; one ``orders.rejected`` event (reason ``cancelled: <why>``) per order."""
        outputs: list[Output] = []
        for entry in self.broker.open_orders():
            order = entry.order
            if strategies is not None and order.strategy not in strategies:
                continue
            if symbol is not None and order.symbol != symbol:
                continue
            if symbol is None and is_square_off(order.signal_id):
                continue  # a closing order: the kill switch and FLATTEN let it work
            cancelled = self.broker.cancel(order.client_order_id, CANCELLED_PREFIX + why)
            if cancelled is None:
                continue
            self.touch(f"order/{order.client_order_id}")
            unfilled = cancelled.order.quantity - cancelled.filled_quantity
            log.warning("cancelled %s %s %s x%d (%s)", order.strategy, order.side,
                        order.symbol, unfilled, why)
            outputs.append(Output(Topics.ORDERS_REJECTED, order.strategy,
                                  cancellation(order, unfilled, why, now_ns())))
        return outputs

    def _square_off(self, decision: RiskDecision, coid: str, mode: Mode) -> list[Output]:
        """A square-off from the risk manager: cancel the pair's working orders, then close
        this engine's exact position with a MARKET order (the decision's quantity is the
        risk manager's estimate). Nothing left to close: the square-off is refused, so the
        risk manager releases what it holds pending for it."""
        signal = decision.signal
        if self.broker.lookup(coid) is not None:
            log.info("square-off %s already handled as %s", signal.event_id, coid)
            return []
        kind = signal.reason.removeprefix("square-off:") or "square-off"
        outputs = self._cancel_working({signal.strategy}, f"square-off {kind}", signal.symbol)
        held = self.positions.get(signal.strategy, {}).get(signal.symbol, 0)
        order = Order(
            event_id=coid, exchange_ts=signal.exchange_ts, ingest_ts=now_ns(),
            client_order_id=coid, signal_id=signal.event_id, strategy=signal.strategy,
            symbol=signal.symbol, side=Side.SELL if held > 0 else Side.BUY,
            quantity=abs(held) or signal.quantity, order_type=OrderType.MARKET,
            mode=mode.value, product=signal.product,
        )
        self.touch(f"order/{coid}")
        if held == 0:
            ack = self.broker.refuse(order, f"square-off {kind}: no position left to close")
            assert ack.rejection is not None
            return [*outputs, Output(Topics.ORDERS_REJECTED, signal.strategy, ack.rejection)]
        self.broker.place(order)
        log.warning("square-off %s: %s %s %s x%d", kind, order.strategy, order.side,
                    order.symbol, order.quantity)
        outputs.append(Output(Topics.ORDERS_SUBMITTED, signal.strategy, order))
        return outputs + self._fill_at_once(order)

    def _ticks_after(self, symbol: str, ts: int) -> Iterable[Tick]:
        """Ticks of ``symbol`` after ``ts`` already consumed, in the order consumed."""
        last = self.last.get(symbol)
        if last is None or last.ts <= ts:
            return ()  # the order waits for the next tick
        recent = self.recent.get(symbol)
        if recent and recent[0].exchange_ts <= ts:
            return [t for t in recent if t.exchange_ts > ts]
        end = self.position(Topics.TICKS, last.partition)
        if end is None:
            return ()
        self.lookups += 1
        start = None
        for entry_ts, offset in reversed(self.index.get(symbol, ())):
            if entry_ts <= ts:
                start = offset
                break
        return self.tick_log.ticks_after(symbol, last.partition, end, ts, start)

    def _result(self, result: Fill | OrderRejected) -> Output:
        if isinstance(result, Fill):
            book = self.positions.setdefault(result.strategy, {})
            held = book.get(result.symbol, 0) + result.side.sign * result.quantity
            if held:
                book[result.symbol] = held
            else:
                book.pop(result.symbol, None)
            if not book:
                del self.positions[result.strategy]
            self.touch(f"pos/{result.strategy}")
        topic = Topics.ORDERS_FILLED if isinstance(result, Fill) else Topics.ORDERS_REJECTED
        return Output(topic, result.strategy, result)

    def state_value(self, task: int, key: str) -> bytes | None:
        kind, _, name = key.partition("/")
        if kind == "order":
            return self.broker.export(name)
        if kind == "live":
            return self.live.export(name) if self.live is not None else None
        if kind == "last":
            last = self.last.get(name)
            return None if last is None else _ENCODER.encode(last)
        if kind == "meta":
            return _ENCODER.encode({str(p): d for p, d in self.days.items()})
        if kind == "pos":
            book = self.positions.get(name)
            return None if not book else _ENCODER.encode(book)
        return None

    def restore_task(self, task: int, items: Mapping[str, bytes]) -> None:
        self.drop_task(task)
        for key, value in items.items():
            kind, _, name = key.partition("/")
            if kind == "order":
                self.broker.load(value)
            elif kind == "live":
                if self.live is None:
                    log.error("%s: a live order %s is in the state but Kite is not "
                              "configured; it is left out", self.stage, name)
                    continue
                self.live.load(value)
            elif kind == "last":
                self.last[name] = _LAST_DECODER.decode(value)
            elif kind == "meta":
                self._load_days(value)
            elif kind == "pos":
                self.positions[name] = _POS_DECODER.decode(value)

    def drop_task(self, task: int) -> None:
        self.broker = PaperBroker(self.paper_config, instruments=self.instruments)
        self.live = self.live_broker() if self.live_broker is not None else None
        self.recent.clear()
        self.index.clear()
        self._seen.clear()
        self.last.clear()
        self.positions.clear()
        self.days.clear()
        self.day_floor = 0
        self.align.reset()

    def _load_days(self, value: bytes) -> None:
        days = msgspec.json.decode(value)
        if isinstance(days, int):  # written before the days were per partition
            self.day_floor = days
        else:
            self.days = {int(p): int(d) for p, d in days.items()}


_ENCODER = msgspec.json.Encoder()
_LAST_DECODER = msgspec.json.Decoder(LastTick)
_POS_DECODER = msgspec.json.Decoder(dict[str, int])
