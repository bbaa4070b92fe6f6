"""Outage probes, object names in log lines, handler metrics (no servers)."""

from __future__ import annotations

import logging

import pytest

from alphaspt.exceptions import InfrastructureUnavailable, InvalidConfiguration
from alphaspt.operator import metrics
from alphaspt.operator.logs import ObjectNames, acting_on
from alphaspt.operator.outages import OutageMonitor


async def test_outage_monitor_reports_changes_only() -> None:
    state = {"up": True}
    changes: list[dict[str, str]] = []

    async def postgres() -> None:
        if not state["up"]:
            raise InfrastructureUnavailable("connection refused")

    async def kafka() -> None:
        return None

    monitor = OutageMonitor({"PostgreSQL": postgres, "Kafka": kafka}, timeout=0.5)

    async def changed() -> None:
        changes.append(dict(monitor.outages()))

    monitor.on_change = changed
    assert await monitor.check() is False
    state["up"] = False
    assert await monitor.check() is True
    assert await monitor.check() is False  # still down: no second change
    assert monitor.outages() == {"PostgreSQL": "connection refused"}
    state["up"] = True
    assert await monitor.check() is True
    assert changes == [{"PostgreSQL": "connection refused"}, {}]


async def test_a_probe_that_hangs_counts_as_down() -> None:
    import asyncio

    async def hangs() -> None:
        await asyncio.sleep(10)

    monitor = OutageMonitor({"Kafka": hangs}, timeout=0.05)
    await monitor.check()
    assert "no answer" in monitor.outages()["Kafka"]


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("alphaspt.operator.strategies", logging.INFO, __file__, 1, msg,
                               None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_log_records_name_their_object() -> None:
    names = ObjectNames()
    with acting_on("TradingStrategy", "trading", "mom"):
        record = _record("stored")
        names.filter(record)
        names.filter(record)  # a second handler: prefixed once
    assert record.getMessage() == "[TradingStrategy trading/mom] stored"
    kopf_record = _record("Handler succeeded.", k8s_ref={
        "kind": "RiskProfile", "namespace": "trading", "name": "default"})
    names.filter(kopf_record)
    assert kopf_record.getMessage() == "[RiskProfile trading/default] Handler succeeded."
    outside = _record("starting")
    names.filter(outside)
    assert outside.getMessage() == "starting"


def _sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_measured_counts_runs_errors_and_durations() -> None:
    labels = {"kind": "TradingStrategy", "handler": "unit"}
    runs = _sample("alphaspt_operator_reconciles_total", **labels)
    with metrics.measured("TradingStrategy", "unit"):
        pass
    with pytest.raises(InvalidConfiguration), metrics.measured("TradingStrategy", "unit"):
        raise InvalidConfiguration("bad")
    assert _sample("alphaspt_operator_reconciles_total", **labels) == runs + 2
    assert _sample("alphaspt_operator_reconcile_errors_total", error="permanent", **labels) >= 1
    assert _sample("alphaspt_operator_reconcile_duration_seconds_count", **labels) >= 2
