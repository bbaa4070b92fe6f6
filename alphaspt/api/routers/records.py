"""Shared by the orders and rejections routers: query parameters and record validation."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any, Final, TypeVar

from fastapi import Query
from pydantic import BaseModel, ValidationError

from alphaspt.api.metrics import ApiMetrics
from alphaspt.core.cache import RECENT_LIMIT
from alphaspt.core.specs import NAME_PATTERN

log = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500

Offset = Annotated[
    int, Query(ge=0, le=RECENT_LIMIT, description="Records to skip (newest first).")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
StrategyFilter = Annotated[
    str | None,
    Query(pattern=NAME_PATTERN, max_length=253, description="Only this strategy's records."),
]

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], raw: Iterable[Any], kind: str, metrics: ApiMetrics) -> list[M]:
    """Records that match ``model``; others are logged and counted, never a 500."""
    items: list[M] = []
    for record in raw:
        try:
            items.append(model.model_validate(record))
        except ValidationError as exc:
            metrics.invalid_records.labels(kind).inc()
            log.warning("skipping a malformed %s record in Redis: %s", kind,
                        exc.errors(include_input=False, include_url=False))
    return items
