"""Is a TradingStrategy or RiskProfile usable as written? The checks the workers would fail.

One service for everyone who must refuse a resource before anything runs: ``alphaspt up``
(before any server starts, and on every edit of its manifests directory) and the operator
(``Ready=False``, reason ``InvalidStrategy``, no Deployment). It runs the workers' own code:
the spec models of :mod:`alphaspt.core.specs` and :func:`~alphaspt.strategies.registry.
load_strategy` (the strategy runner builds its strategy with it), so what passes here
starts, and what fails here would crash-loop.

Each problem names the resource and the field (the CRD's camelCase path, ``spec.params.
threshhold``), and the file when the caller knows it. Pure: no I/O beyond importing a
``module:Class`` strategy, which is what the runner does too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from alphaspt.core.specs import RiskProfileSpec, TradingStrategySpec
from alphaspt.exceptions import InvalidConfiguration, UnknownStrategy
from alphaspt.strategies.registry import load_strategy

TRADING_STRATEGY: Final = "TradingStrategy"
RISK_PROFILE: Final = "RiskProfile"


@dataclass(frozen=True)
class Problem:
    """One reason a resource cannot run: ``file: Kind ns/name: field: message``."""

    resource: str
    """``TradingStrategy default/momentum-demo`` (kind, namespace, name)."""
    field: str
    """Where in the resource: ``spec.params.threshold``; ``-`` for the whole document."""
    message: str
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.resource}: {self.field}: {self.message}"


def resource_id(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


def validate_strategy(
    name: str,
    spec: Mapping[str, Any] | TradingStrategySpec,
    *,
    namespace: str = "default",
    profile: RiskProfileSpec | None = None,
    known_instruments: Collection[str] | None = None,
    unknown_is_error: bool = True,
    file: str | None = None,
) -> list[Problem]:
    """Every problem of one TradingStrategy (empty: it can run).

    ``spec`` is the raw ``spec`` mapping of the resource (or an already parsed spec).
    ``profile``: the RiskProfile it refers to, when known; an instrument outside its
    ``allowedInstruments`` could never trade. ``known_instruments``: the symbols the market
    feed can deliver (a replay file's symbols, an instrument list); ``None``: any symbol.
    """
    rid = resource_id(TRADING_STRATEGY, namespace, name)
    if isinstance(spec, TradingStrategySpec):
        parsed = spec
    else:
        try:
            parsed = TradingStrategySpec.model_validate(dict(spec))
        except ValidationError as exc:
            return validation_problems(exc, rid, "spec", file)
    problems: list[Problem] = []
    try:
        load_strategy(parsed.strategy, name, parsed.params)
    except UnknownStrategy as exc:
        # A package.module:Class strategy of a strategy with its own worker image lives in
        # that image only: its runner checks it there.
        if parsed.image is None or not isinstance(exc.__cause__, ImportError):
            problems.append(Problem(rid, "spec.strategy", str(exc), file))
    except InvalidConfiguration as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            problems += validation_problems(cause, rid, "spec.params", file)
        else:
            problems.append(Problem(rid, "spec.params", str(exc), file))
    if profile is not None and profile.allowed_instruments:
        outside = [s for s in parsed.instruments if s not in profile.allowed_instruments]
        if outside:
            problems.append(Problem(
                rid, "spec.instruments",
                f"{', '.join(outside)} not in allowedInstruments of RiskProfile "
                f"{parsed.risk_profile_ref} (every order would be refused)", file))
    if known_instruments is not None:
        unknown = [s for s in parsed.instruments if s not in known_instruments]
        if unknown and (unknown_is_error or len(unknown) == len(parsed.instruments)):
            problems.append(Problem(
                rid, "spec.instruments",
                f"unknown instruments {', '.join(unknown)} (the market feed has no ticks "
                "for them)", file))
    return problems


def validate_risk_profile(
    name: str,
    spec: Mapping[str, Any],
    *,
    namespace: str = "default",
    file: str | None = None,
) -> tuple[RiskProfileSpec | None, list[Problem]]:
    """The parsed RiskProfile spec (``None`` when invalid) and its problems."""
    rid = resource_id(RISK_PROFILE, namespace, name)
    try:
        return RiskProfileSpec.model_validate(dict(spec)), []
    except ValidationError as exc:
        return None, validation_problems(exc, rid, "spec", file)


def validation_problems(exc: ValidationError, resource: str, prefix: str,
                        file: str | None = None) -> list[Problem]:
    """One :class:`Problem` per pydantic error, the field as a dotted path under ``prefix``."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (misspelt?)"
        elif "input" in err and err["type"] != "missing" and _short(err["input"]):
            message = f"{message} (got {err['input']!r})"
        path = ".".join(part for part in (prefix, loc) if part) or "-"
        out.append(Problem(resource, path, message, file))
    return out


def _short(value: object) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 60


def summary(problems: Sequence[Problem]) -> str:
    """The first problem, and how many more there are, on one line."""
    if not problems:
        return ""
    more = len(problems) - 1
    return str(problems[0]) + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
