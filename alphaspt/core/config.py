"""Settings: read from the environment (prefix ``ALPHASPT_``) and ``config/settings.toml``.

The environment is read in exactly one place, :func:`load_settings`, called at the edge
(the CLI, a worker's ``main``, the operator's start-up). Everything below receives one of
the frozen per-component configs, never the environment.

Nested fields use ``__``: ``ALPHASPT_KAFKA__BOOTSTRAP_SERVERS=host:9092``,
``ALPHASPT_API__TOKEN=...``. Credentials are ``SecretStr`` so they never print.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from alphaspt.exceptions import InvalidConfiguration

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


class MarketConfig(BaseModel):
    """The exchange's rules the risk manager, the paper broker and the mock feed apply
    (``docs/risk.md``): the trading calendar and the instruments file."""

    model_config = _FROZEN

    calendar: str | None = "XBOM"
    """``exchange_calendars`` code of NSE/BSE's calendar; ``None`` (env: empty): no
    MARKET_CLOSED rule (tests of the plumbing only)."""
    calendar_overrides: Path | None = None
    """YAML: special sessions (Muhurat) and holidays declared after the library's release."""
    calendar_start: date = date(2015, 1, 1)
    """First day of the calendar table (replays before it are refused as closed)."""
    instruments_file: Path | None = None
    """A Kite instruments CSV (``examples/instruments.csv``, or the live dump): tick and lot
    sizes, segments, circuit bands. ``None``: no per-instrument rules."""

    @field_validator("calendar", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", "none", "None") else value


class AccountRiskConfig(BaseModel):
    """Order caps of the whole broker account, shared by all its strategies (Kite's
    limits by default: 10 orders/s, 400/min, 5,000/day)."""

    model_config = _FROZEN

    account_max_orders_per_second: int = Field(default=10, ge=1, le=10)
    account_max_orders_per_minute: int | None = Field(default=400, ge=1)
    account_max_orders_per_day: int | None = Field(default=5000, ge=1)


class KiteConfig(BaseModel):
    """Zerodha Kite Connect (Live strategies). The two roots are all the broker knows of
    the server: Kite's by default, or any Kite-protocol server (``alphaspt kite-sim``).

    ``api_key``/``api_secret``/``access_token`` come from the environment or a Kubernetes
    Secret (``ALPHASPT_KITE__API_KEY`` ...), never from a file in the repository; locally
    the access token is read from ``token_file`` (written by ``alphaspt kite login``).
    """

    model_config = _FROZEN

    api_root: str = "https://api.kite.trade"
    ticker_root: str = "wss://ws.kite.trade"
    login_url: str = "https://kite.zerodha.com/connect/login"
    api_key: str | None = None
    api_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    """Set from the strategy's Secret; wins over ``token_file``."""
    access_token_expires: datetime | None = None
    """When ``access_token`` expires (06:00 IST after its login; the Secret's
    ``ALPHASPT_KITE__ACCESS_TOKEN_EXPIRES``, written by ``alphaspt kite login``)."""
    token_file: Path | None = None
    """A JSON file of mode 0600 holding the access token and its expiry (``alphaspt up``)."""
    instruments_dir: Path = Path(".alphaspt/kite")
    """Where the live feed caches the day's instruments dump (one file per exchange)."""
    timeout_s: float = Field(default=7.0, gt=0)
    """Per request (kiteconnect's default); a placement that times out is looked up by tag."""
    market_protection: float = Field(default=-1, ge=-1, le=100)
    """Sent on MARKET and SL-M orders: -1 automatic, 0 < p <= 100 percent (0 is refused
    by Kite since 1 April 2026)."""
    orders_per_second: int = Field(default=10, ge=1)
    orders_per_minute: int = Field(default=400, ge=1)
    orders_per_day: int = Field(default=5000, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    """At most one order-book read per this many seconds while orders are open."""
    lookup_window_s: float = Field(default=10.0, gt=0)
    """How long an order whose placement outcome is unknown is looked for by tag."""
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    """How often Kite's positions are compared with AlphasPT's orders."""

    @model_validator(mode="after")
    def _protection(self) -> KiteConfig:
        if self.market_protection == 0 or -1 < self.market_protection < 0:
            raise ValueError("kite.market_protection must be -1 (automatic) or in (0, 100]")
        return self


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
    market: MarketConfig = MarketConfig()
    risk: AccountRiskConfig = AccountRiskConfig()


    kite: KiteConfig = KiteConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=settings_file()),
            file_secret_settings,
        )


def load_settings() -> Settings:
    """Read the environment and the optional TOML file. Call this only at the edge.

    Raises :class:`InvalidConfiguration` with one line per bad value, naming the variable
    (``ALPHASPT_API__PORT``) or the file and key it came from; never a value that may be
    a credential.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidConfiguration("; ".join(
            _describe(tuple(str(p) for p in err["loc"]), err["msg"], err.get("input"))
            for err in exc.errors())) from None
    except SettingsError as exc:
        match = re.search(r'field "([^"]+)"', str(exc))
        field = match.group(1) if match else "?"
        variables = sorted(k for k in os.environ if k.upper().startswith(
            f"{ENV_PREFIX}{field.upper()}"))
        where = ", ".join(variables) or f"{settings_file()}: {field}"
        raise InvalidConfiguration(f"{where}: cannot parse the value (a list or table "
                                   "must be JSON, e.g. '[\"a\", \"b\"]')") from None
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise InvalidConfiguration(f"{settings_file()}: cannot read settings: {exc}") from None


ENV_PREFIX: Final = "ALPHASPT_"
_SECRET_WORDS: Final = ("token", "password", "url", "secret")


def settings_file() -> Path:
    """The settings file in use (``ALPHASPT_SETTINGS_FILE``, default
    ``config/settings.toml``); it need not exist."""
    return Path(os.environ.get("ALPHASPT_SETTINGS_FILE", "config/settings.toml"))


def env_name(loc: tuple[str, ...]) -> str:
    """The variable that sets a field: ``("api", "port")`` → ``ALPHASPT_API__PORT``."""
    return ENV_PREFIX + "__".join(part.upper() for part in loc)


def _describe(loc: tuple[str, ...], message: str, value: object) -> str:
    shown = "" if any(w in part.lower() for part in loc for w in _SECRET_WORDS) else (
        f" (got {value!r})" if isinstance(value, str | int | float) else "")
    # The deepest variable that is set names the culprit (ALPHASPT_API__PORT, or
    # ALPHASPT_API holding a JSON table).
    for depth in range(len(loc), 0, -1):
        name = env_name(loc[:depth])
        if any(k.upper() == name for k in os.environ):
            return f"{name}: {message}{shown}"
    return f"{settings_file()}: {'.'.join(loc)}: {message}{shown}"
