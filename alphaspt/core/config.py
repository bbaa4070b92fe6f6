"""Settings: read from the environment (prefix ``ALPHASPT_``) and ``config/settings.toml``.

The environment is read in exactly one place, :func:`load_settings`, called at the edge
(the CLI, a worker's ``main``, the operator's start-up). Everything below receives one of
the frozen per-component configs, never the environment.

Nested fields use ``__``: ``ALPHASPT_KAFKA__BOOTSTRAP_SERVERS=host:9092``,
``ALPHASPT_API__TOKEN=...``. Credentials are ``SecretStr`` so they never print.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class KafkaConfig(BaseModel):
    """Connection to the Kafka-API log (Redpanda, Apache Kafka, or the embedded tansu)."""

    model_config = _FROZEN

    bootstrap_servers: str = ""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    fetch_wait_max_ms: int = Field(default=20, ge=0)
    """How long a broker may hold a fetch for data. Short: every stage hop pays it when the
    broker waits out the full time (tansu does), and ticks must not wait 0.5 s per hop."""
    session_timeout_ms: int = Field(default=6000, ge=1000)
    """Consumer group session timeout. Short, so a dead stage's partitions move quickly
    (and because tansu holds a group join for about half of it)."""

    def consumer_config(self) -> dict[str, str | int | float | bool]:
        """Properties for consumers: the client config plus group timing."""
        return {
            **self.client_config(),
            "session.timeout.ms": self.session_timeout_ms,
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "heartbeat.interval.ms": max(500, self.session_timeout_ms // 3),
        }

    def client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka properties common to producers, consumers and the admin client."""
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        return conf


class PostgresConfig(BaseModel):
    model_config = _FROZEN

    url: SecretStr | None = None
    """SQLAlchemy URL, ``postgresql+asyncpg://user:pass@host:5432/db``. Empty: embedded."""


class RedisConfig(BaseModel):
    model_config = _FROZEN

    url: SecretStr | None = None
    """``redis://host:6379/0``. Empty: embedded."""


class ApiConfig(BaseModel):
    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    token: SecretStr | None = None
    cors_origins: tuple[str, ...] = ()


class MetricsConfig(BaseModel):
    """A worker's probe and metrics endpoint: ``/healthz``, ``/readyz``, ``/metrics``."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    """0: no endpoint (the default locally, where many workers share one host)."""


class LocalConfig(BaseModel):
    """``alphaspt up``: where embedded servers keep their state and which broker to start."""

    model_config = _FROZEN

    state_dir: Path = Path(".alphaspt")
    kafka: Literal["tansu", "apache"] = "tansu"


class OperatorConfig(BaseModel):
    """The Kubernetes operator (``alphaspt operator``): what it renders and how often it looks.

    Workers get their connection settings (``ALPHASPT_POSTGRES__URL``,
    ``ALPHASPT_KAFKA__BOOTSTRAP_SERVERS``, ...) from the Secret ``connection_secret``, whose
    keys are those variable names; nothing secret is ever written into a Deployment.
    """

    model_config = _FROZEN

    worker_image: str = "ghcr.io/alphaspt/alphaspt-worker:0.1.0"
    """Image of the strategy runners unless a TradingStrategy sets ``spec.image``."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    connection_secret: str = "alphaspt-connections"  # noqa: S105 - a Secret's name
    service_account: str | None = None
    """ServiceAccount of the worker pods (``None``: the namespace default; no token mounted)."""
    default_requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "256Mi"})
    """Worker resources for every key a TradingStrategy's ``spec.resources`` leaves out."""
    default_limits: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "500m", "memory": "512Mi"})
    kubeconfig: Path | None = None
    """Out of cluster: this kubeconfig. ``None``: in-cluster service account, else ~/.kube."""
    resync_interval: float = Field(default=60.0, gt=0)
    """Seconds between full reconciles of each resource (drift repair)."""
    runtime_interval: float = Field(default=10.0, gt=0)
    """Seconds between reads of a TradingStrategy's runtime summary from Redis."""
    runtime_write_interval: float = Field(default=30.0, ge=0)
    """Least seconds between two writes of one strategy's ``status.runtime`` (written only
    when it changed): bounds the etcd writes with many strategies."""
    probe_interval: float = Field(default=5.0, gt=0)
    """Seconds between probes of PostgreSQL and Kafka: an outage shows on every
    TradingStrategy within two intervals, and clears as soon as a probe succeeds."""
    sweep_interval: float | None = Field(default=None, gt=0)
    """Seconds between sweeps of rows whose resource is gone (``None``: resync_interval)."""
    metrics_port: int | None = Field(default=9090, ge=1, le=65535)
    """Prometheus ``http://0.0.0.0:PORT/metrics`` (reconciles, errors, durations per kind);
    ``None`` disables it."""
    retry_delay: float = Field(default=10.0, gt=0)
    """Seconds before retrying when a dependency (server, RiskProfile) is not ready."""
    deletion_attempts: int = Field(default=3, ge=1)
    """A deletion's clean-up is tried this often; then the resource is released anyway."""
    health_port: int | None = Field(default=8080, ge=1, le=65535)
    """Liveness endpoint ``http://0.0.0.0:PORT/healthz``; ``None`` disables it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALPHASPT_",
        env_nested_delimiter="__",
        toml_file="config/settings.toml",
        frozen=True,
        extra="ignore",
    )

    log_level: str = "INFO"
    namespace: str = "default"
    clock: Literal["wall", "event"] = "wall"
    """What decides time-based rules (order rates, trading window, staleness, the day):
    ``wall`` for live and mock trading, where rate limits are real seconds; ``event`` (the
    events' exchange timestamps) for replays and backtests, so a run's decisions do not
    depend on how fast, or with how many restarts, it was processed."""
    kafka: KafkaConfig = KafkaConfig()
    postgres: PostgresConfig = PostgresConfig()
    redis: RedisConfig = RedisConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    local: LocalConfig = LocalConfig()
    operator: OperatorConfig = OperatorConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("ALPHASPT_SETTINGS_FILE", "config/settings.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
            file_secret_settings,
        )


def load_settings() -> Settings:
    """Read the environment and the optional TOML file. Call this only at the edge."""
    return Settings()
