"""The CRDs and the pydantic specs are one contract: same fields, constraints and defaults;
and every status field the operator writes is declared (else the API server prunes it)."""

from __future__ import annotations

import itertools
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from alphaspt.core.specs import (
    NAME_PATTERN,
    STRATEGY_REF_PATTERN,
    SYMBOL_PATTERN,
    DesiredState,
    RiskProfileSpec,
    TradingStrategySpec,
)
from alphaspt.operator.conditions import FALSE, TRUE, Condition, strategy_phase
from alphaspt.operator.riskprofiles import RiskProfileReconciler
from alphaspt.operator.strategies import ReconcilerConfig, StrategyReconciler
from tests.unit.operator.conftest import (
    FakeControl,
    FakeKube,
    FakeRepo,
    FakeRuntime,
    FakeTopics,
    RecordedEvents,
    strategy_spec,
)

CRDS = Path(__file__).resolve().parents[3] / "crds"
CONSTRAINTS = ("pattern", "maxLength", "minLength", "minimum", "maximum", "minItems",
               "maxItems")


def crd(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((CRDS / f"{name}.yaml").read_text()))


def schema_of(name: str) -> dict[str, Any]:
    (version,) = crd(name)["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return dict(defs[node["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in node:  # Optional[...]
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        return _resolve(options[0], defs) if len(options) == 1 else node
    return node


def _compare(model: type[BaseModel], crd_spec: dict[str, Any], where: str) -> None:
    schema = model.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    props = schema["properties"]
    assert set(props) == set(crd_spec["properties"]), where
    assert set(schema.get("required", [])) == set(crd_spec.get("required", [])), where
    for field, raw in props.items():
        mine = _resolve(raw, defs)
        theirs = crd_spec["properties"][field]
        path = f"{where}.{field}"
        if "enum" in mine:
            assert theirs["enum"] == mine["enum"], path
        for key in CONSTRAINTS:
            if key in mine:
                assert theirs.get(key) == mine[key], (path, key)
        if "exclusiveMinimum" in mine:
            assert theirs["minimum"] == mine["exclusiveMinimum"], path
            assert theirs["exclusiveMinimum"] is True, path
        if mine.get("type") == "object" and "properties" in mine:
            _compare(_model_of(model.model_fields[_python_name(model, field)].annotation),
                     theirs, path)


def _model_of(annotation: Any) -> type[BaseModel]:
    """The pydantic model in ``Model`` or ``Model | None``."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise TypeError(annotation)


def _python_name(model: type[BaseModel], alias: str) -> str:
    for name, info in model.model_fields.items():
        if (info.alias or name) == alias:
            return name
    raise KeyError(alias)


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server stores: schema defaults filled in, recursively."""
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    out = dict(value)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if key in out:
            out[key] = _apply_defaults(sub, out[key])
    return out


def test_trading_strategy_schema_matches_the_model() -> None:
    spec = schema_of("tradingstrategies")["properties"]["spec"]
    _compare(TradingStrategySpec, spec, "TradingStrategy.spec")
    assert spec["properties"]["instruments"]["items"]["pattern"] == SYMBOL_PATTERN
    assert spec["properties"]["strategy"]["pattern"] == STRATEGY_REF_PATTERN
    assert spec["properties"]["riskProfileRef"]["pattern"] == NAME_PATTERN
    assert spec["properties"]["instruments"]["x-kubernetes-list-type"] == "set"  # unique
    minimal = {"strategy": "momentum", "instruments": ["INFY"], "riskProfileRef": "default"}
    stored = _apply_defaults(spec, minimal)
    assert TradingStrategySpec.model_validate(stored) == TradingStrategySpec.model_validate(
        minimal)


def test_risk_profile_schema_matches_the_model() -> None:
    spec = schema_of("riskprofiles")["properties"]["spec"]
    _compare(RiskProfileSpec, spec, "RiskProfile.spec")
    assert spec["properties"]["allowedInstruments"]["items"]["pattern"] == SYMBOL_PATTERN
    # Every default of the CRD is the model's default (one source of truth for both).
    assert RiskProfileSpec.model_validate(_apply_defaults(spec, {})) == RiskProfileSpec()
    assert RiskProfileSpec.model_validate(
        _apply_defaults(spec, {"tradingWindow": {}})) == RiskProfileSpec()
    window = spec["properties"]["tradingWindow"]
    assert RiskProfileSpec.model_validate({"tradingWindow": window["default"]}) == \
        RiskProfileSpec()


@pytest.mark.parametrize("name", ["tradingstrategies", "riskprofiles"])
def test_names_categories_and_printer_columns(name: str) -> None:
    body = crd(name)
    names = body["spec"]["names"]
    assert names["categories"] == ["alphaspt"]
    assert names["shortNames"] == [{"tradingstrategies": "ts", "riskprofiles": "rp"}[name]]
    (version,) = body["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["metadata"]["properties"]["name"]["pattern"] == NAME_PATTERN
    for column in version["additionalPrinterColumns"]:
        path = re.sub(r"\[\?\(@\.type==\"\w+\"\)\]", "", column["jsonPath"]).strip(".")
        node = schema
        for part in path.split("."):
            if part == "metadata":
                break
            node = node["properties"][part]
            node = node.get("items", node)
        else:
            assert "type" in node, column


def _declared(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """Paths in ``value`` that ``schema`` does not declare (or declares otherwise)."""
    problems = []
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if props is not None and key in props:
                problems += _declared(props[key], sub, f"{path}.{key}")
            elif isinstance(extra, dict):
                problems += _declared(extra, sub, f"{path}.{key}")
            else:
                problems.append(f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _declared(schema.get("items", {}), item, f"{path}[{i}]")
    elif "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}={value!r} not in {schema['enum']}")
    return problems


async def test_every_status_field_written_is_declared(config: ReconcilerConfig) -> None:
    kube, runtime = FakeKube(), FakeRuntime()
    events, repo, topics, control = RecordedEvents(), FakeRepo(), FakeTopics(), FakeControl()
    profiles = RiskProfileReconciler(config, kube=kube, repo=repo, topics=topics,
                                     control=control, events=events)
    strategies = StrategyReconciler(config, kube=kube, repo=repo, topics=topics,
                                    control=control, runtime=runtime, events=events,
                                    on_binding=profiles.refresh_binding)
    from alphaspt.core.cache import PositionView, StrategyView

    kube.add("riskprofiles", "RiskProfile", "default", {})
    kube.add("tradingstrategies", "TradingStrategy", "mom", strategy_spec())
    runtime.views["mom"] = StrategyView(
        name="mom", positions=(PositionView(symbol="INFY", quantity=-2, avg_price=1.0,
                                            last_price=1.0, realised_pnl=0.0,
                                            unrealised_pnl=0.0),),
        net_pnl=-1.5, updated_at=1767225600.0)
    await profiles.reconcile("default")
    await strategies.reconcile("mom")
    await strategies.refresh_runtime("mom")
    ts_status = schema_of("tradingstrategies")["properties"]["status"]
    rp_status = schema_of("riskprofiles")["properties"]["status"]
    ts = kube.objects[("tradingstrategies", "mom")]["status"]
    assert {"observedGeneration", "phase", "conditions", "runtime", "configHash"} <= set(ts)
    assert _declared(ts_status, ts, "status") == []
    assert _declared(rp_status, kube.objects[("riskprofiles", "default")]["status"],
                     "status") == []
    phases = {
        strategy_phase(d, Condition("C", c, ""), Condition("T", TRUE, ""),
                       Condition("W", w, r), failed=f, halted=h)
        for d, c, w, r, f, h in itertools.product(
            DesiredState, (TRUE, FALSE), (TRUE, FALSE),
            ("WorkerUnavailable", "RolloutPending"), (True, False), (True, False))
    }
    assert phases == set(ts_status["properties"]["phase"]["enum"])


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    missing = []
    for key, sub in (node.get("properties") or {}).items():
        where = f"{path}.{key}"
        if where.count(".") == 1 and key == "metadata":
            continue  # the API server refuses anything but name/generateName there
        if not str(sub.get("description") or "").strip():
            missing.append(where)
        missing += _undescribed(sub, where)
        if isinstance(sub.get("items"), dict):
            missing += _undescribed(sub["items"], where + "[]")
    return missing


@pytest.mark.parametrize("name", ["tradingstrategies", "riskprofiles"])
def test_every_field_is_described_for_kubectl_explain(name: str) -> None:
    assert _undescribed(schema_of(name), name) == []


@pytest.mark.parametrize("name", ["tradingstrategies", "riskprofiles"])
def test_printer_columns_show_the_ready_reason_and_message(name: str) -> None:
    (version,) = crd(name)["spec"]["versions"]
    paths = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert paths["Reason"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert paths["Message"] == '.status.conditions[?(@.type=="Ready")].message'


def test_every_condition_type_written_is_declared() -> None:
    from alphaspt.operator.conditions import STRATEGY_CONDITIONS

    item = schema_of("tradingstrategies")["properties"]["status"]["properties"]["conditions"]
    assert set(item["items"]["properties"]["type"]["enum"]) == set(STRATEGY_CONDITIONS)
