"""Schemathesis against the published OpenAPI of a live server: no 5xx, responses conform.

Bounded: a few examples per operation (``max_examples``), so it runs in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from alphaspt.api.server import BackgroundServer
from alphaspt.core.cache import PortfolioCacheWriter, PositionView, StrategyView

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded(api_redis_url: str) -> Iterator[None]:
    client = redis.Redis.from_url(api_redis_url, decode_responses=True)
    client.flushdb()
    writer = PortfolioCacheWriter(client)
    writer.write_snapshot([
        StrategyView(name="alpha", positions=(
            PositionView(symbol="INFY", quantity=3, avg_price=1500.0, last_price=1510.0,
                         realised_pnl=0.0, unrealised_pnl=30.0),), unrealised_pnl=30.0,
            net_pnl=30.0),
        StrategyView(name="b", mode="Live", state="Paused"),
    ])
    for i in range(5):
        writer.record("order", "alpha", {"client_order_id": f"co-{i}", "quantity": i})
        writer.record("rejection", "b", {"reason": "MAX_ORDER_VALUE", "message": "too big"})
    yield
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def api_schema(
    api_server: BackgroundServer, api_token: str, seeded: None
) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(
        f"{api_server.url}/openapi.json",
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=10,
    )
    loaded.config.update(base_url=api_server.url)
    return loaded


@pytest.fixture(scope="module")
def auth_headers(api_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_and_never_5xx(
    api_schema: schemathesis.BaseSchema, auth_headers: dict[str, str], mode: GenerationMode
) -> None:
    # schemathesis' pytest plugin does not support this pytest yet; its Python API does the
    # same: one Hypothesis strategy of cases per operation.
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result  # the published schema is valid
        operations.append(result.ok())
    assert len(operations) >= 8
    exercised: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Case[Any]) -> None:
            response = case.call(headers=auth_headers, timeout=10)
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                 case.query, response.text)
            if mode is GenerationMode.POSITIVE:
                assert response.status_code != 401
                case.validate_response(response)

        try:
            check()
        except Unsatisfiable:
            # No parameter to break (e.g. GET /api/v1/portfolio): nothing negative to send.
            assert mode is GenerationMode.NEGATIVE
            assert not operation.path_parameters, operation.label
            assert not operation.query, operation.label
            continue
        exercised.append(operation.label)
    assert any("{name}" in label for label in exercised)
    assert any("/orders" in label for label in exercised)
