"""``alphaspt up``'s manifests: read a directory of YAML, check it all, plan it.

:func:`check_manifests` is what ``up`` runs before any server starts and again on every
edit of the directory: it reads every document, validates each resource with the workers'
own code (:func:`alphaspt.strategies.validation.validate_strategy`), checks references
between them (a strategy's RiskProfile must be in the directory) and, when the feed is a
replay, the instruments against the replay file's symbols; then it plans with the operator's
pure :func:`~alphaspt.operator.planning.plan`. Problems come back as a list, one line each,
naming the file, the resource and the field; nothing is raised for bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from pydantic import ValidationError

from alphaspt.core.specs import API_VERSION, NAME_PATTERN, Manifest, RiskProfileSpec
from alphaspt.exceptions import InvalidConfiguration
from alphaspt.feeds import ReplayFeed, ReplayFormatError
from alphaspt.operator.planning import (
    RISK_PROFILE,
    TRADING_STRATEGY,
    Plan,
    PlanConfig,
    StrategyResource,
    plan,
    plan_strategy,
    resources_from_manifests,
)
from alphaspt.strategies.validation import (
    Problem,
    resource_id,
    validate_risk_profile,
    validate_strategy,
    validation_problems,
)

MAX_PROBLEMS: Final = 20
"""Problems reported at most (the rest are counted)."""


@dataclass(frozen=True)
class SourcedManifest:
    file: Path
    manifest: Manifest


def manifest_files(path: Path) -> list[Path]:
    """The YAML files of ``path`` (a file, or a directory, not recursive), sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def read_manifests(path: Path) -> tuple[list[SourcedManifest], list[Problem]]:
    """Every YAML document with a ``kind`` in ``path``, and the documents that are not
    readable as a resource."""
    if not path.exists():
        return [], [Problem("-", "-", "does not exist; pass -f DIR with your manifests "
                            "(alphaspt init DIR writes the examples)", str(path))]
    found: list[SourcedManifest] = []
    problems: list[Problem] = []
    for file in manifest_files(path):
        try:
            docs = list(yaml.safe_load_all(file.read_text()))
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            detail = " ".join(str(exc).split())
            problems.append(Problem("-", "-", f"not valid YAML: {detail}", str(file)))
            continue
        for n, doc in enumerate(docs, 1):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            try:
                found.append(SourcedManifest(file, Manifest.model_validate(doc)))
            except ValidationError as exc:
                problems += validation_problems(exc, f"{doc.get('kind')} (document {n})", "",
                                                str(file))
    return found, problems


def load_manifests(path: Path) -> list[Manifest]:
    """Every resource document in ``path``; raises :class:`InvalidConfiguration` with the
    first unreadable one."""
    found, problems = read_manifests(path)
    if problems:
        raise InvalidConfiguration(str(problems[0]))
    return [s.manifest for s in found]


@dataclass(frozen=True)
class ReplayScan:
    """What a replay file holds: its symbols, and the rows the feed will skip."""

    symbols: frozenset[str]
    ticks: int
    skipped: int
    first_skipped: str | None


def scan_replay(path: Path) -> tuple[ReplayScan | None, list[Problem]]:
    """Read the replay file with the feed's own reader (:class:`ReplayFeed`)."""
    skipped: list[ReplayFormatError] = []
    symbols: set[str] = set()
    ticks = 0
    try:
        for tick in ReplayFeed(path, on_error=skipped.append):
            symbols.add(tick.symbol)
            ticks += 1
    except ReplayFormatError as exc:
        return None, [Problem("replay file", f"line {exc.line}", exc.reason, str(path))]
    if ticks == 0:
        return None, [Problem("replay file", "-", "no ticks in the file", str(path))]
    first = str(skipped[0]) if skipped else None
    return ReplayScan(frozenset(symbols), ticks, len(skipped), first), []


def check_manifests(
    path: Path,
    config: PlanConfig,
    *,
    known_instruments: Iterable[str] | None = None,
    adapt: Callable[[list[StrategyResource]], list[StrategyResource]] | None = None,
) -> tuple[Plan | None, list[Problem]]:
    """The plan of the manifests in ``path``, or ``None`` and every problem found.

    ``adapt``: applied to the valid strategies before planning (``up --kite-sim`` runs them
    Live against the simulator).

    ``known_instruments``: the replay file's symbols; a strategy none of whose instruments
    is among them is refused (it could never trade)."""
    found, problems = read_manifests(path)
    known = None if known_instruments is None else frozenset(known_instruments)
    ours: list[SourcedManifest] = []
    seen: dict[tuple[str, str, str], Path] = {}
    for item in found:
        m = item.manifest
        if m.kind not in (TRADING_STRATEGY, RISK_PROFILE):
            continue
        ns = str(m.metadata.get("namespace") or config.namespace)
        name = str(m.metadata.get("name"))
        rid = resource_id(m.kind, ns, name)
        if m.api_version != API_VERSION:
            problems.append(Problem(rid, "apiVersion",
                                    f"must be {API_VERSION}, got {m.api_version!r}",
                                    str(item.file)))
            continue
        if not re.fullmatch(NAME_PATTERN, name) or len(name) > 63:
            problems.append(Problem(rid, "metadata.name", "must be a DNS label (lower-case "
                                    "letters, digits and '-', at most 63)", str(item.file)))
            continue
        key = (m.kind, ns, name)
        if key in seen:
            problems.append(Problem(rid, "metadata.name",
                                    f"defined twice (also in {seen[key]})", str(item.file)))
            continue
        seen[key] = item.file
        ours.append(item)
    profiles: dict[tuple[str, str], RiskProfileSpec] = {}
    for item in ours:
        m = item.manifest
        if m.kind == RISK_PROFILE:
            ns = str(m.metadata.get("namespace") or config.namespace)
            spec, found_problems = validate_risk_profile(m.name, m.spec, namespace=ns,
                                                         file=str(item.file))
            problems += found_problems
            if spec is not None:
                profiles[(ns, m.name)] = spec
    declared_profiles = {(str(i.manifest.metadata.get("namespace") or config.namespace),
                         i.manifest.name) for i in ours if i.manifest.kind == RISK_PROFILE}
    for item in ours:
        m = item.manifest
        if m.kind != TRADING_STRATEGY:
            continue
        ns = str(m.metadata.get("namespace") or config.namespace)
        ref = m.spec.get("riskProfileRef")
        profile = profiles.get((ns, str(ref)))
        strategy_problems = validate_strategy(m.name, m.spec, namespace=ns, profile=profile,
                                              known_instruments=known,
                                              unknown_is_error=False, file=str(item.file))
        problems += strategy_problems
        if isinstance(ref, str) and (ns, ref) not in declared_profiles:
            problems.append(Problem(resource_id(TRADING_STRATEGY, ns, m.name),
                                    "spec.riskProfileRef",
                                    f"RiskProfile {ref!r} is not in {path}", str(item.file)))
    if problems:
        return None, problems
    strategies, risk_profiles = resources_from_manifests([i.manifest for i in ours],
                                                         namespace=config.namespace)
    if adapt is not None:
        strategies = adapt(list(strategies))
    files = {(TRADING_STRATEGY, i.manifest.name): i.file for i in ours}
    for resource in strategies:
        try:
            plan_strategy(resource, config)
        except InvalidConfiguration as exc:
            problems.append(Problem(resource_id(TRADING_STRATEGY, resource.namespace,
                                                resource.name), "spec.resources", str(exc),
                                    str(files[(TRADING_STRATEGY, resource.name)])))
    if problems:
        return None, problems
    return plan(strategies, risk_profiles, config), []


def format_problems(problems: Sequence[Problem]) -> list[str]:
    """One line per problem, at most :data:`MAX_PROBLEMS` (then how many more)."""
    lines = [str(p) for p in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
    return lines
