"""Rolling per-instrument features computed from ticks: pure, deterministic, replayable.

:class:`FeatureCalculator` keeps one small rolling state per symbol and turns each
:class:`~alphaspt.core.events.Tick` into a :class:`~alphaspt.core.events.Features` event.

Definitions (``n`` = number of prices seen for the symbol, this tick included):

- **First tick of a symbol**: seeds the state and returns ``None`` (a return needs a
  previous price). The first ``Features`` of a symbol therefore has ``count == 2``.
- ``ret``: simple return against the previous price, ``price / previous - 1``.
- ``ema_fast`` / ``ema_slow``: exponential moving averages with ``alpha = 2 / (span + 1)``,
  seeded with the first price: ``ema = alpha * price + (1 - alpha) * ema``.
- ``mean`` / ``std``: **population** mean and standard deviation (ddof 0) of the last
  ``min(n, window)`` prices, this price included.
  Computed from running sums of the window shifted by a recent price, summed again
  exactly (``math.fsum``) every ``window`` ticks and whenever cancellation would cost more
  than four digits (so within about 1e-11 of the two-pass value, and exactly 0 on a flat
  window); the sums are part of the exported state, so a restored symbol continues
  bit for bit like an uninterrupted one.
- ``zscore``: ``(price - mean) / std``; ``0.0`` when ``std`` is zero (a flat window; a
  relative tolerance of 1e-12 absorbs floating-point noise from identical prices).
- ``vwap``: ``sum(price * traded) / sum(traded)`` over the symbol's ticks of the current
  **IST calendar day** (of ``tick.exchange_ts``), reset when the IST day changes. ``traded``
  is the increase of the cumulative day ``volume`` since the previous tick when the feed
  provides it (Kite repeats ``last_quantity`` on ticks without a new trade, so summing
  ``quantity`` would double count), otherwise ``tick.quantity``. Until any quantity has
  traded in the session, ``vwap`` equals the last price.
- ``volatility``: realised volatility, the **sample** standard deviation (ddof 1) of the
  last ``vol_window`` log returns, times ``sqrt(annualisation)``; ``0.0`` with fewer than
  two returns. ``annualisation`` is 1 by default (per-tick volatility); ticks are irregular,
  so set it only when ticks are bars of a fixed period (e.g. ``252 * 375`` for 1-minute bars).

Robustness: a tick older than the symbol's newest ``exchange_ts`` is stale, and one at that
timestamp whose ``event_id`` was already seen at it is a duplicate (at-least-once delivery:
a redelivered tick carries its original timestamp, so only the ids of the newest timestamp
need remembering, at most 64); both return ``None`` and change nothing. A tick with a
non-finite or non-positive price, or a negative quantity/volume, raises
:class:`InvalidTick` (the worker dead-letters it).

``Features.event_id`` is ``alphaspt.core.events.stable_id("features", tick.event_id)``,
``tick_id`` is the tick's id and ``exchange_ts`` the tick's, so a replay yields identical
events (only ``ingest_ts`` differs, by definition).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alphaspt.core.clock import ist_day, ist_day_start
from alphaspt.core.events import Features, Tick, now_ns

__all__ = ["FeatureCalculator", "FeatureConfig", "InvalidTick", "ist_day"]

_DEDUP_IDS = 64
"""How many recent tick ids per symbol are remembered to drop redelivered ticks."""
_ZERO_STD_RTOL = 1e-12
_INF = math.inf



_FEATURES_HASH = hashlib.blake2b(b"features|", digest_size=12)


def _features_id(tick_id: str) -> str:
    """``stable_id("features", tick_id)``: a copy of the hash of the common prefix, fed the
    tick id (the hot path: 0.36 against 0.57 us for a fresh hash here)."""
    h = _FEATURES_HASH.copy()
    h.update(tick_id.encode())
    return h.hexdigest()


class InvalidTick(ValueError):
    """A tick that cannot be used for features (bad price or quantity)."""


class FeatureConfig(BaseModel):
    """Windows and spans of the feature calculator (frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ema_fast_span: int = Field(default=12, ge=1)
    ema_slow_span: int = Field(default=26, ge=1)
    window: int = Field(default=20, ge=2)
    """Prices in the rolling mean / std / z-score window."""
    vol_window: int = Field(default=20, ge=2)
    """Log returns in the realised-volatility window."""
    annualisation: float = Field(default=1.0, gt=0)
    """Volatility is multiplied by ``sqrt(annualisation)``; 1 = per-tick volatility."""

    @model_validator(mode="after")
    def _spans_ordered(self) -> FeatureConfig:
        if self.ema_fast_span >= self.ema_slow_span:
            raise ValueError(
                f"ema_fast_span ({self.ema_fast_span}) must be smaller than "
                f"ema_slow_span ({self.ema_slow_span})"
            )
        return self


class _SymbolState(msgspec.Struct, kw_only=True):
    """Rolling state of one symbol; a msgspec struct so it snapshots to JSON-able data."""

    count: int
    last_price: float
    last_ts: int
    ema_fast: float
    ema_slow: float
    prices: list[float]
    log_returns: list[float]
    session_day: int
    session_pv: float
    session_qty: int
    session_volume: int
    """Cumulative day volume reported by the previous tick of the session (0: none)."""
    recent_ids: list[str]
    """Ids of the symbol's ticks at ``last_ts`` (older states: its last 64 ticks)."""
    price_moments: list[float] | None = None
    """Running sums of the price window (:class:`_Moments`); absent in older states."""
    return_moments: list[float] | None = None


_SYMBOL_ENCODER = msgspec.json.Encoder()
_SYMBOL_DECODER = msgspec.json.Decoder(_SymbolState)


def _squared_deviations(values: deque[float]) -> tuple[float, float]:
    """Exact (two-pass, ``fsum``) mean and sum of squared deviations from it."""
    mean = math.fsum(values) / len(values)
    return mean, math.fsum((v - mean) * (v - mean) for v in values)


_CANCELLATION = 1e-4
"""When the running second moment loses more than four digits to cancellation
(``n * var < 1e-4 *`` the largest sum of squares since the last exact sum: a window that
is flat, was wide and is now narrow, or is far from its shift), the
window is summed again exactly, so a flat window has ``std == 0.0`` and every other one
stays within about 1e-11 (relative) of the exact two-pass value."""


class _Moments:
    """Running sums of a bounded window, shifted by a reference value ``k``:
    ``s1 = sum(x - k)``, ``s2 = sum((x - k)**2)``, recomputed exactly (``fsum``) every
    ``len(window)`` updates and whenever cancellation threatens, so the drift of the
    incremental updates stays bounded. The sums are a deterministic function of the
    window's history since the last exact recomputation, and they are kept in the
    snapshot, so a restored calculator continues exactly like an uninterrupted one.

    ``hi`` is the largest ``s2`` since the last exact recomputation: the rounding left in
    ``s2`` scales with it, not with the current ``s2`` (a window that was wide and is now
    flat keeps a residue of about 1e-16 of its wide sum)."""

    __slots__ = ("hi", "k", "s1", "s2", "since")

    def __init__(self, values: deque[float], saved: list[float] | None) -> None:
        if saved is not None and len(saved) == 5:
            self.k, self.s1, self.s2, self.hi, since = saved
            self.since = int(since)
        else:  # none, or saved before ``hi`` (four values): summed again
            self.exact(values)

    def exact(self, values: deque[float]) -> None:
        k = values[-1] if values else 0.0
        self.k = k
        self.s1 = math.fsum(v - k for v in values)
        self.s2 = self.hi = math.fsum((v - k) * (v - k) for v in values)
        self.since = 0

    def push_centred(self, values: deque[float], x: float) -> tuple[float, float]:
        """Append ``x`` to ``values`` (a bounded deque), update the sums, and return the
        window's (mean, sum of squared deviations from the mean): one call per tick."""
        k = self.k
        d = x - k
        if len(values) == values.maxlen:
            old = values[0] - k
            values.append(x)
            self.s1 += d - old
            self.s2 += d * d - old * old
        else:
            values.append(x)
            self.s1 += d
            self.s2 += d * d
        self.since += 1
        n = len(values)
        if self.since >= n:
            self.exact(values)
        elif self.s2 > self.hi:
            self.hi = self.s2
        ss = self.s2 - self.s1 * self.s1 / n
        if ss <= _CANCELLATION * self.hi:
            return _squared_deviations(values)
        return self.k + self.s1 / n, ss

    def saved(self) -> list[float]:
        return [self.k, self.s1, self.s2, self.hi, float(self.since)]


class _Rolling:
    """Live (deque-based) form of :class:`_SymbolState`."""

    __slots__ = (
        "count",
        "ema_fast",
        "ema_slow",
        "last_price",
        "last_ts",
        "log_returns",
        "price_moments",
        "prices",
        "recent_ids",
        "return_moments",
        "session_day",
        "session_end",
        "session_pv",
        "session_qty",
        "session_volume",
    )

    def __init__(self, s: _SymbolState, config: FeatureConfig) -> None:
        self.count = s.count
        self.last_price = s.last_price
        self.last_ts = s.last_ts
        self.ema_fast = s.ema_fast
        self.ema_slow = s.ema_slow
        self.prices: deque[float] = deque(s.prices[-config.window :], maxlen=config.window)
        self.log_returns: deque[float] = deque(
            s.log_returns[-config.vol_window :], maxlen=config.vol_window
        )
        self.session_day = s.session_day
        self.session_end = ist_day_start(s.session_day + 1)
        self.session_pv = s.session_pv
        self.session_qty = s.session_qty
        self.session_volume = s.session_volume
        self.recent_ids = s.recent_ids[-_DEDUP_IDS:]
        # Sums saved with other windows describe other windows: recompute them.
        self.price_moments = _Moments(
            self.prices, s.price_moments if len(self.prices) == len(s.prices) else None)
        self.return_moments = _Moments(
            self.log_returns,
            s.return_moments if len(self.log_returns) == len(s.log_returns) else None)

    def to_state(self) -> _SymbolState:
        return _SymbolState(
            count=self.count,
            last_price=self.last_price,
            last_ts=self.last_ts,
            ema_fast=self.ema_fast,
            ema_slow=self.ema_slow,
            prices=list(self.prices),
            log_returns=list(self.log_returns),
            session_day=self.session_day,
            session_pv=self.session_pv,
            session_qty=self.session_qty,
            session_volume=self.session_volume,
            recent_ids=list(self.recent_ids),
            price_moments=self.price_moments.saved(),
            return_moments=self.return_moments.saved(),
        )

    def remember(self, event_id: str) -> None:
        """One more tick at ``last_ts`` (bounded: the oldest id beyond 64 is forgotten)."""
        ids = self.recent_ids
        if len(ids) >= _DEDUP_IDS:
            del ids[0]
        ids.append(event_id)

    def start_session(self, day: int) -> None:
        self.session_day = day
        self.session_end = ist_day_start(day + 1)
        self.session_pv = 0.0
        self.session_qty = 0
        self.session_volume = 0


class FeatureCalculator:
    """Per-symbol rolling features. Not thread-safe; one instance per consumer."""

    SNAPSHOT_VERSION = 1

    def __init__(
        self, config: FeatureConfig | None = None, *, clock: Callable[[], int] = now_ns
    ) -> None:
        self.config = config or FeatureConfig()
        self._clock = clock
        self._alpha_fast = 2.0 / (self.config.ema_fast_span + 1)
        self._alpha_slow = 2.0 / (self.config.ema_slow_span + 1)
        self._vol_scale = math.sqrt(self.config.annualisation)
        self._symbols: dict[str, _Rolling] = {}

    @property
    def symbols(self) -> list[str]:
        return sorted(self._symbols)

    def update(self, tick: Tick) -> Features | None:
        """Fold one tick into its symbol's state; see the module docstring for the maths.

        The hot path of the feature engine: written with locals and one call per window
        (measured in ``bench/``); the arithmetic is the same, operation for operation, as
        the definitions above."""
        price = tick.price
        if not 0.0 < price < _INF:  # also refuses NaN
            raise InvalidTick(f"{tick.symbol}: price must be a positive number, got {price!r}")
        quantity = tick.quantity
        volume = tick.volume
        if quantity < 0 or volume < 0:
            raise InvalidTick(
                f"{tick.symbol}: negative quantity ({quantity}) or volume ({volume})"
            )
        ts = tick.exchange_ts
        st = self._symbols.get(tick.symbol)
        if st is None:
            self._symbols[tick.symbol] = self._seed(tick)
            return None
        last_ts = st.last_ts
        if ts > last_ts:
            st.last_ts = ts
            st.recent_ids = [tick.event_id]
        elif ts < last_ts or tick.event_id in st.recent_ids:
            return None
        else:
            st.remember(tick.event_id)

        prev = st.last_price
        ret = price / prev - 1.0
        st.count += 1
        st.last_price = price
        st.ema_fast += self._alpha_fast * (price - st.ema_fast)
        st.ema_slow += self._alpha_slow * (price - st.ema_slow)
        prices = st.prices
        mean, ss = st.price_moments.push_centred(prices, price)
        log_returns = st.log_returns
        ret_ss = st.return_moments.push_centred(log_returns, math.log(price / prev))[1]

        if ts >= st.session_end:
            st.start_session(ist_day(ts))
        session_volume = st.session_volume
        if volume > 0 and session_volume > 0 and volume >= session_volume:
            traded = volume - session_volume
        else:
            traded = quantity
        if volume > 0:
            st.session_volume = volume
        st.session_pv += price * traded
        st.session_qty += traded
        vwap = st.session_pv / st.session_qty if st.session_qty > 0 else price

        std = math.sqrt(ss / len(prices))
        if std <= _ZERO_STD_RTOL * abs(mean):
            std = 0.0
            zscore = 0.0
        else:
            zscore = (price - mean) / std
        returns = len(log_returns)
        volatility = 0.0 if returns < 2 else math.sqrt(ret_ss / (returns - 1)) * self._vol_scale

        return Features(
            event_id=_features_id(tick.event_id),
            exchange_ts=ts,
            ingest_ts=self._clock(),
            symbol=tick.symbol,
            price=price,
            tick_id=tick.event_id,
            count=st.count,
            ret=ret,
            ema_fast=st.ema_fast,
            ema_slow=st.ema_slow,
            mean=mean,
            std=std,
            zscore=zscore,
            vwap=vwap,
            volatility=volatility,
        )

    def _seed(self, tick: Tick) -> _Rolling:
        """The state of a symbol's first tick."""
        price = tick.price
        traded = tick.quantity
        return _Rolling(
            _SymbolState(
                count=1,
                last_price=price,
                last_ts=tick.exchange_ts,
                ema_fast=price,
                ema_slow=price,
                prices=[price],
                log_returns=[],
                session_day=ist_day(tick.exchange_ts),
                session_pv=price * traded,
                session_qty=traded,
                session_volume=tick.volume,
                recent_ids=[tick.event_id],
            ),
            self.config,
        )

    def export(self, symbol: str) -> bytes | None:
        """One symbol's state as JSON (``None`` if unknown); :meth:`load` reads it back."""
        st = self._symbols.get(symbol)
        return None if st is None else _SYMBOL_ENCODER.encode(st.to_state())

    def load(self, symbol: str, data: bytes) -> None:
        """Replace one symbol's state with :meth:`export` output. Raises ``ValueError``."""
        try:
            state = _SYMBOL_DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"malformed feature state of {symbol}: {exc}") from exc
        self._symbols[symbol] = _Rolling(state, self.config)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state of every symbol (restore with :meth:`restore`)."""
        return {
            "version": self.SNAPSHOT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "symbols": {
                sym: msgspec.to_builtins(st.to_state()) for sym, st in self._symbols.items()
            },
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot`. Raises ``ValueError`` if malformed.

        A snapshot taken with other windows is accepted (windows are trimmed), but its EMAs
        were computed with the spans of that time.
        """
        if snapshot.get("version") != self.SNAPSHOT_VERSION:
            raise ValueError(f"unsupported feature snapshot version {snapshot.get('version')!r}")
        try:
            states = msgspec.convert(snapshot["symbols"], dict[str, _SymbolState])
        except (KeyError, msgspec.ValidationError) as exc:
            raise ValueError(f"malformed feature snapshot: {exc}") from exc
        self._symbols = {sym: _Rolling(s, self.config) for sym, s in states.items()}
