"""The strategy interface: features in, signals out, nothing else.

A strategy is pure: it never talks to a broker, a log or a database. It sees
:class:`~alphaspt.core.events.Features` one at a time and answers with
:class:`~alphaspt.core.events.Signal` values.

**Target book.** Each strategy keeps, per symbol, the signed target position it has asked
for (``+q`` long, ``-q`` short, ``0`` flat). A subclass only says which target it wants
(:meth:`Strategy.decide`); the base class emits a signal for the *difference* from the
current target: flat → long ``q`` is ``BUY q``, long ``q`` → short ``q`` is ``SELL 2q``,
unchanged target emits nothing.

**Warm-up.** The first :attr:`Strategy.warmup` feature events of each symbol only feed the
strategy's indicators; signals can come from event ``warmup + 1`` on. :meth:`Strategy.observe`
feeds historical features without ever emitting or moving the target book, so a runner
can warm up from history of any length, then resume live with :meth:`Strategy.on_features`.

**Determinism.** ``Signal.event_id = stable_id(name, symbol, features.tick_id, side)``,
``exchange_ts`` and ``ref_price`` come from the features: a replay of the same features
through a strategy restored from the same snapshot produces the same signals.

**Parameters.** Each strategy class names a frozen pydantic ``Params`` model deriving from
:class:`StrategyParams` (``extra="forbid"``: a typo in a custom resource's ``params`` is
refused, not ignored). Keys may be snake_case or camelCase (``allow_short``/``allowShort``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from alphaspt.core.events import Features, Side, Signal, now_ns, stable_id
from alphaspt.exceptions import InvalidConfiguration


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: frozen, unknown keys refused."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


P = TypeVar("P", bound=StrategyParams)


def format_validation_error(exc: ValidationError) -> str:
    """``loc: message`` for each pydantic error, joined with ``; ``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "params"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class Strategy(ABC, Generic[P]):
    """A pure trading strategy. Subclasses set ``Params`` and implement :meth:`decide`."""

    Params: ClassVar[type[StrategyParams]]
    """The parameter model of this strategy (a :class:`StrategyParams` subclass)."""

    SNAPSHOT_VERSION: ClassVar[int] = 1

    def __init__(self, name: str, params: P, *, clock: Callable[[], int] = now_ns) -> None:
        if not name:
            raise InvalidConfiguration("a strategy needs a non-empty name")
        if not isinstance(params, self.Params):
            raise InvalidConfiguration(
                f"{type(self).__name__} expects {self.Params.__name__}, got {type(params).__name__}"
            )
        self.name = name
        self.params: P = params
        self._clock = clock
        self._targets: dict[str, int] = {}
        self._seen: dict[str, int] = {}

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any] | None) -> StrategyParams:
        """Validate raw parameters (a custom resource's ``params``) into ``cls.Params``.

        Raises :class:`InvalidConfiguration` listing every problem.
        """
        try:
            return cls.Params.model_validate(dict(raw or {}))
        except ValidationError as exc:
            raise InvalidConfiguration(
                f"invalid params for {cls.__name__}: {format_validation_error(exc)}"
            ) from exc

    # -- what subclasses implement ------------------------------------------------------

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Feature events per symbol consumed before the strategy may signal."""

    @abstractmethod
    def decide(self, features: Features, current: int) -> int | None:
        """Update indicator state with ``features``; return the wanted signed target position
        for ``features.symbol`` or ``None`` to keep the current one (``current``).

        Called for every event, warm-up included; the base class decides whether to act.
        """

    def _state_snapshot(self) -> dict[str, Any]:
        """Subclass indicator state, JSON-able. Default: none."""
        return {}

    def _state_restore(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_state_snapshot` returned."""

    # -- the runner's interface -----------------------------------------------------------

    def on_features(self, features: Features) -> list[Signal]:
        """Feed one event; return the signals that move the target book (often none)."""
        seen = self._count(features.symbol)
        current = self._targets.get(features.symbol, 0)
        wanted = self.decide(features, current)
        if seen <= self.warmup or wanted is None or wanted == current:
            return []
        delta = wanted - current
        side = Side.BUY if delta > 0 else Side.SELL
        self.set_target(features.symbol, wanted)
        return [
            Signal(
                event_id=stable_id(self.name, features.symbol, features.tick_id, side),
                exchange_ts=features.exchange_ts,
                ingest_ts=self._clock(),
                strategy=self.name,
                symbol=features.symbol,
                side=side,
                quantity=abs(delta),
                ref_price=features.price,
                reason=self.explain(features, current, wanted),
            )
        ]

    def observe(self, features: Features) -> None:
        """Feed a historical event: indicators and warm-up advance; no signal, no target change."""
        self._count(features.symbol)
        self.decide(features, self._targets.get(features.symbol, 0))

    def explain(self, features: Features, current: int, wanted: int) -> str:
        """The human-readable ``Signal.reason``; subclasses may say more."""
        return f"target {current} -> {wanted} at {features.price:g}"

    @property
    def targets(self) -> dict[str, int]:
        """A copy of the target book: signed target position per symbol."""
        return dict(self._targets)

    def set_target(self, symbol: str, position: int) -> None:
        """Align the target book with reality (e.g. after an order was rejected downstream)."""
        if position == 0:
            self._targets.pop(symbol, None)
        else:
            self._targets[symbol] = position

    def seen(self, symbol: str) -> int:
        """Feature events consumed for ``symbol`` (warm-up included)."""
        return self._seen.get(symbol, 0)

    def warmed_up(self, symbol: str) -> bool:
        return self.seen(symbol) >= self.warmup

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: target book, warm-up counters and indicator state."""
        return {
            "version": self.SNAPSHOT_VERSION,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "name": self.name,
            "targets": dict(self._targets),
            "seen": dict(self._seen),
            "state": self._state_snapshot(),
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of the same strategy class.

        Raises ``ValueError`` if the snapshot is malformed or from another class.
        """
        if snapshot.get("version") != self.SNAPSHOT_VERSION:
            raise ValueError(f"unsupported strategy snapshot version {snapshot.get('version')!r}")
        expected = f"{type(self).__module__}:{type(self).__qualname__}"
        if snapshot.get("class") != expected:
            raise ValueError(
                f"snapshot of {snapshot.get('class')!r} cannot restore a {expected} strategy"
            )
        targets, seen, state = snapshot.get("targets"), snapshot.get("seen"), snapshot.get("state")
        if not (_is_int_map(targets) and _is_int_map(seen) and isinstance(state, dict)):
            raise ValueError("malformed strategy snapshot: targets/seen/state")
        self._state_restore(state)
        self._targets = {k: v for k, v in targets.items() if v != 0}
        self._seen = dict(seen)

    def _count(self, symbol: str) -> int:
        n = self._seen.get(symbol, 0) + 1
        self._seen[symbol] = n
        return n


def _is_int_map(value: object) -> TypeGuard[dict[str, int]]:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    )
