"""The custom resources' specs as frozen pydantic models: one contract for everyone.

The CRD's OpenAPI schema (``crds/``) refuses invalid resources at the API server; these
models parse the same spec for the operator, ``alphaspt up`` (which reads the same YAML),
the database rows and the workers. Field names are the CRD's camelCase on the wire
(``populate_by_name`` also accepts snake_case in Python).
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from alphaspt.core.events import Product

GROUP: Final = "alphaspt.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""Kubernetes DNS label: strategy and profile names become topic, group and pod names."""
SYMBOL_PATTERN: Final = r"^[A-Z0-9][A-Z0-9&_-]{0,29}$"
"""NSE trading symbols: RELIANCE, M&M, BAJAJ-AUTO, NIFTY24DECFUT."""
STRATEGY_REF_PATTERN: Final = r"^([a-z][a-z0-9_]*|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$"
"""A built-in name (``momentum``) or ``package.module:ClassName``."""


class _Spec(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class Mode(StrEnum):
    PAPER = "Paper"
    LIVE = "Live"


class DesiredState(StrEnum):
    RUNNING = "Running"
    PAUSED = "Paused"
    STOPPED = "Stopped"


class SecretRef(_Spec):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)


class ResourceRequirements(_Spec):
    requests: dict[str, str] = Field(default_factory=lambda: {"cpu": "100m", "memory": "256Mi"})
    limits: dict[str, str] = Field(default_factory=lambda: {"cpu": "500m", "memory": "512Mi"})


class TradingWindow(_Spec):
    start: time = time(9, 15)
    end: time = time(15, 30)
    timezone: str = "Asia/Kolkata"

    @model_validator(mode="after")
    def _ordered(self) -> TradingWindow:
        if self.end <= self.start:
            raise ValueError("tradingWindow.end must be after tradingWindow.start")
        return self


class TradingStrategySpec(_Spec):
    strategy: str = Field(pattern=STRATEGY_REF_PATTERN, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    instruments: tuple[str, ...] = Field(min_length=1, max_length=200)
    mode: Mode = Mode.PAPER
    product: Product = Product.MIS
    """MIS (intraday, squared off at the profile's ``misCutoff``), CNC (delivery) or NRML."""
    risk_profile_ref: str = Field(pattern=NAME_PATTERN, max_length=63)
    desired_state: DesiredState = DesiredState.RUNNING
    broker_secret_ref: SecretRef | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    image: str | None = None
    delete_topics_on_delete: bool = False
    """Deleting the resource keeps topic data unless this is true."""

    @field_validator("instruments")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if not re.fullmatch(SYMBOL_PATTERN, s)]
        if bad:
            raise ValueError(f"not NSE trading symbols: {bad}")
        if len(set(value)) != len(value):
            raise ValueError("instruments must be unique")
        return value

    @model_validator(mode="after")
    def _live_needs_credentials(self) -> TradingStrategySpec:
        if self.mode is Mode.LIVE and self.broker_secret_ref is None:
            raise ValueError("mode Live needs brokerSecretRef (credentials come from a Secret)")
        return self


class RiskProfileSpec(_Spec):
    max_order_quantity: int = Field(default=1000, ge=1)
    max_order_value: float = Field(default=500_000.0, gt=0)
    """Rupees per order."""
    price_band_percent: float = Field(default=5.0, gt=0, le=20)
    """A limit order's price (or a market order's reference) must be within this band of
    the last traded price."""
    max_position_per_instrument: int = Field(default=5000, ge=0)
    """Absolute net quantity per symbol."""
    max_gross_exposure: float = Field(default=5_000_000.0, ge=0)
    """Rupees: sum over symbols of |position| x last price, after the order."""
    max_daily_loss: float = Field(default=50_000.0, ge=0)
    """Rupees: trading stops for the day when realised + unrealised P&L <= -maxDailyLoss."""
    max_orders_per_second: int = Field(default=5, ge=1, le=10)
    """NSE allows at most 10 orders/s per account; that ceiling always applies."""
    max_orders_per_minute: int = Field(default=100, ge=1)
    allowed_instruments: tuple[str, ...] = ()
    """Empty: every instrument of the strategy is allowed."""
    trading_window: TradingWindow = Field(default_factory=TradingWindow)
    mis_cutoff: time = time(15, 20)
    """IST: no risk-increasing MIS order at or after this time; open MIS positions are
    squared off at it."""
    kill_switch: bool = False

    @field_validator("allowed_instruments")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if not re.fullmatch(SYMBOL_PATTERN, s)]
        if bad:
            raise ValueError(f"not NSE trading symbols: {bad}")
        return value


class Manifest(BaseModel):
    """A custom resource as found in a YAML file: enough for ``alphaspt up``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: dict[str, Any]
    spec: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata["name"])
