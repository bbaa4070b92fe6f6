"""``alphaspt up``: the whole pipeline on one machine, from the same manifests as a cluster.

1. Start the servers the settings do not name (PostgreSQL, Redis, a Kafka-API broker) on
   loopback ports with state under ``settings.local.state_dir``.
2. Apply the manifests with the operator's pure planning function: upsert the rows, ensure
   the topics, archive strategies no longer in the manifests (like ``kubectl apply --prune``).
3. Supervise the workers: the shared stages, one strategy runner per Running strategy (the
   plan's ``WorkerSpec.argv``/``env``), and the API; restart a worker that dies, with
   exponential back-off.
4. On Ctrl-C, SIGTERM or when ``--for`` elapses: stop the workers, then the servers; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Protocol

import redis
import yaml
from pydantic import SecretStr

from alphaspt.core.config import Settings
from alphaspt.core.db import ConfigRepository, create_engine, migrate
from alphaspt.core.events import Command, Control, Topics, now_ns, stable_id
from alphaspt.core.specs import Manifest
from alphaspt.core.streaming import EventProducer, TopicSpec, admin_client, ensure_topics
from alphaspt.exceptions import InvalidConfiguration, ServerStartError
from alphaspt.local.apache_kafka import ApacheKafka
from alphaspt.local.process import ManagedProcess, fetch_status, free_port, port_open, tail
from alphaspt.local.servers import EmbeddedPostgres, EmbeddedRedis, Tansu
from alphaspt.operator.planning import Plan, PlanConfig, WorkerSpec, plan, resources_from_manifests
from alphaspt.workers import SHARED_STAGES


class _Server(Protocol):
    name: str
    restartable: bool

    @property
    def running(self) -> bool: ...

    def restart(self) -> None: ...

    def stop(self) -> None: ...


def load_manifests(path: Path) -> list[Manifest]:
    """Every YAML document in ``path`` (a file or a directory, not recursive)."""
    if not path.exists():
        raise InvalidConfiguration(f"{path} does not exist; pass -f DIR with your manifests")
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.suffix in (".yaml", ".yml")
    )
    manifests = []
    for file in files:
        try:
            docs = list(yaml.safe_load_all(file.read_text()))
        except yaml.YAMLError as exc:
            raise InvalidConfiguration(f"{file}: not valid YAML: {exc}") from exc
        for doc in docs:
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            try:
                manifests.append(Manifest.model_validate(doc))
            except ValueError as exc:
                raise InvalidConfiguration(f"{file}: {exc}") from exc
    return manifests


def redact(url: str) -> str:
    """A URL fit for a terminal: any password replaced by ``***``."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"


@dataclass
class Child:
    """A supervised worker process with restart back-off."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: ManagedProcess | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)
    health_port: int | None = None
    """Where the worker serves /status (shared stages and runners)."""
    reason: str | None = None
    """The worker's own word on why it makes no progress (from /status)."""
    lag: int = 0

    def start(self) -> None:
        self.process = ManagedProcess(self.name, self.argv, self.log_path, env=self.env)
        self.process.start()
        self.started_at = time.monotonic()


@dataclass(frozen=True)
class UpOptions:
    manifests: Path = Path("examples")
    duration: float | None = None
    feed: str = "mock"
    replay: Path | None = None
    speed: float | None = None
    max_backoff: float = 2.0
    """A crashed worker is back within this many seconds (first restart after 0.25 s)."""
    report_every: float = 10.0
    """Seconds between progress lines (0: none)."""


class LocalRuntime:
    def __init__(self, settings: Settings, options: UpOptions,
                 out: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.options = options
        self.out = out
        self.state_dir = settings.local.state_dir.resolve()
        self.servers: list[_Server] = []
        self.children: list[Child] = []
        self._stop = False
        self.urls: dict[str, str] = {}
        self.token = ""
        self.exit_code = 0
        self._lock: IO[str] | None = None

    # -- entry point ---------------------------------------------------------------------

    def up(self) -> int:
        started = time.monotonic()
        desired = self._plan(load_manifests(self.options.manifests))
        self._lock_state_dir()
        self._check_api_port()
        self._install_signal_handlers()
        try:
            self._start_servers()
            if self._stop:
                return 0
            self._apply(desired)
            self._start_workers(desired)
            self.out(f"ready in {time.monotonic() - started:.1f} s; "
                     f"{len(self.children)} processes supervised, logs in "
                     f"{self.state_dir / 'logs'}")
            url = f"http://{self.settings.api.host}:{self.settings.api.port}"
            self.out(f"dashboard  {url}/#token={self.token}")
            self.out(f"api token  {self.token}   (Authorization: Bearer <token>)")
            self.out("press Ctrl-C to stop" if self.options.duration is None
                     else f"stopping after {self.options.duration:g} s (Ctrl-C stops earlier)")
            self._supervise(started)
        finally:
            self._shutdown()
        return self.exit_code

    def _lock_state_dir(self) -> None:
        """One ``up`` per state directory: a second one must not touch the first one's
        servers (PostgreSQL's pid file, Redis and broker data)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "up.lock"
        handle = open(path, "a+")  # noqa: SIM115 - held (and the lock with it) until exit
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise InvalidConfiguration(
                f"another alphaspt up (pid {owner}) is running on {self.state_dir}; stop it "
                f"or use another state directory (ALPHASPT_LOCAL__STATE_DIR)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self._stop = True

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def _check_api_port(self) -> None:
        api = self.settings.api
        if port_open(api.host, api.port):
            raise InvalidConfiguration(
                f"{api.host}:{api.port} is already in use (another alphaspt up?). Stop it, "
                f"or choose another port with ALPHASPT_API__PORT=8001"
            )

    # -- servers -------------------------------------------------------------------------

    def _start_servers(self) -> None:
        s = self.settings
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.urls["postgres"] = self._server_url(
            "postgres", s.postgres.url, lambda: EmbeddedPostgres(self.state_dir / "postgres"))
        self.urls["redis"] = self._server_url(
            "redis", s.redis.url, lambda: EmbeddedRedis(self.state_dir / "redis"))
        if s.kafka.bootstrap_servers:
            self.urls["kafka"] = s.kafka.bootstrap_servers
            self.out(f"{'kafka':9s} {s.kafka.bootstrap_servers}  (external)")
        else:
            self.urls["kafka"] = self._start_kafka()
        self.token = (s.api.token.get_secret_value() if s.api.token is not None
                      else secrets.token_urlsafe(24))

    def _server_url(self, name: str, configured: SecretStr | None,
                    make: Callable[[], EmbeddedPostgres | EmbeddedRedis]) -> str:
        if configured is not None:
            url = configured.get_secret_value()
            self.out(f"{name:9s} {redact(url)}  (external)")
            return url
        self.out(f"{name:9s} starting ...")
        t0 = time.monotonic()
        server = make()
        server.start()
        self.servers.append(server)
        self.out(f"{name:9s} {server.url.replace('+asyncpg', '')}  "
                 f"(embedded, started in {time.monotonic() - t0:.1f} s)")
        return server.url

    def _start_kafka(self) -> str:
        kind = self.settings.local.kafka
        self.out(f"{'kafka':9s} starting {kind} ...")
        t0 = time.monotonic()
        if kind == "apache":
            apache = ApacheKafka()
            try:
                apache.start()
            except RuntimeError as exc:
                raise ServerStartError(str(exc)) from exc
            self.servers.append(_ApacheServer(apache))
            url = apache.bootstrap_servers
        else:
            tansu = Tansu(self.state_dir / "tansu")
            tansu.start()
            self.servers.append(tansu)
            url = tansu.bootstrap_servers
        self.out(f"{'kafka':9s} {url}  ({kind}, embedded, started in "
                 f"{time.monotonic() - t0:.1f} s)")
        return url

    # -- configuration -------------------------------------------------------------------

    def _plan(self, manifests: Sequence[Manifest]) -> Plan:
        """Validate the manifests and plan, before any server starts."""
        strategies, profiles = resources_from_manifests(manifests,
                                                        namespace=self.settings.namespace)
        return plan(strategies, profiles, PlanConfig(
            namespace=self.settings.namespace, partitions=self.settings.kafka.partitions))

    def _apply(self, desired: Plan) -> None:
        asyncio.run(self._apply_rows(desired))
        kafka = self.settings.kafka.model_copy(update={"bootstrap_servers": self.urls["kafka"]})
        ensure_topics(
            admin_client(kafka),
            [TopicSpec(t.name, t.partitions, dict(t.config)) for t in desired.topics],
            replication_factor=kafka.replication_factor,
        )
        producer = EventProducer(kafka)
        producer.send(Topics.CONTROL, "*", Control(
            event_id=stable_id("up", now_ns()), exchange_ts=now_ns(),
            command=Command.CONFIG_CHANGED, issued_by="alphaspt up"))
        producer.flush()
        names = ", ".join(f"{r.name} ({r.spec.strategy}, {r.spec.desired_state.value})"
                          for r in desired.strategies)
        self.out(f"applied   {len(desired.strategies)} strategies [{names}], "
                 f"{len(desired.risk_profiles)} risk profiles, {len(desired.topics)} topics")

    async def _apply_rows(self, desired: Plan) -> None:
        url = self.urls["postgres"]
        await migrate(url)
        repo = ConfigRepository(create_engine(url))
        try:
            for p in desired.risk_profiles:
                await repo.upsert_risk_profile(**p.upsert_args())
            for s in desired.strategies:
                await repo.upsert_strategy(**s.upsert_args())
            wanted = {(s.namespace, s.name) for s in desired.strategies}
            for record in await repo.list_strategies(self.settings.namespace):
                if (record.namespace, record.name) not in wanted:
                    await repo.archive_strategy(record.namespace, record.name)
                    self.out(f"archived  strategy {record.name} (not in the manifests)")
        finally:
            await repo.close()

    # -- workers -------------------------------------------------------------------------

    def _child_env(self, extra: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")}
        env.update({
            "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS": self.urls["kafka"],
            "ALPHASPT_POSTGRES__URL": self.urls["postgres"],
            "ALPHASPT_REDIS__URL": self.urls["redis"],
            "ALPHASPT_API__TOKEN": self.token,
            "ALPHASPT_API__HOST": self.settings.api.host,
            "ALPHASPT_API__PORT": str(self.settings.api.port),
            "ALPHASPT_NAMESPACE": self.settings.namespace,
            "ALPHASPT_LOG_LEVEL": self.settings.log_level,
            # A replay decides on its events' own time, so restarts cannot change it.
            "ALPHASPT_CLOCK": "event" if self.options.feed == "replay" else self.settings.clock,
            "ALPHASPT_SETTINGS_FILE": os.environ.get("ALPHASPT_SETTINGS_FILE",
                                                     "config/settings.toml"),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra)
        return env

    def _start_workers(self, desired: Plan) -> None:
        logs = self.state_dir / "logs"
        python = [sys.executable, "-m", "alphaspt"]
        feed_args = ["--feed", self.options.feed]
        if self.options.replay is not None:
            feed_args += ["--replay", str(self.options.replay.resolve())]
        if self.options.speed is not None:
            feed_args += ["--speed", str(self.options.speed)]
        for stage in SHARED_STAGES:
            argv = [*python, "worker", stage, *(feed_args if stage == "market-feed" else [])]
            port = free_port()
            self.children.append(Child(
                stage, argv, self._child_env([("ALPHASPT_METRICS__PORT", str(port))]),
                logs / f"{stage}.log", health_port=port))
        for worker in desired.workers:
            if worker.replicas < 1:
                self.out(f"skipped   {worker.name}: desiredState is not Running")
                continue
            self.children.append(self._strategy_child(worker, python, logs))
        self.children.append(Child("api", [*python, "api"], self._child_env(), logs / "api.log"))
        for child in self.children:
            child.start()

    def _strategy_child(self, worker: WorkerSpec, python: list[str], logs: Path) -> Child:
        argv = list(worker.argv)
        if argv and argv[0] == "alphaspt":
            argv = [*python, *argv[1:]]
        port = free_port()
        env = [*worker.env.items(), ("ALPHASPT_METRICS__PORT", str(port))]
        return Child(worker.name, argv, self._child_env(env), logs / f"{worker.name}.log",
                     health_port=port)

    def _check_health(self) -> None:
        """Ask every worker why it is not making progress; say so when that changes."""
        for child in self.children:
            if child.health_port is None or child.process is None:
                continue
            status = fetch_status(self.settings.metrics.host, child.health_port)
            if status is None:
                continue
            reason = status.get("reason")
            child.lag = int(status.get("lag") or 0)
            if reason != child.reason:
                if reason:
                    self.out(f"{child.name}: {reason}")
                else:
                    self.out(f"{child.name}: making progress again")
                child.reason = reason

    def _report(self, client: redis.Redis) -> None:
        """One progress line from the read model (what the dashboard shows)."""
        try:
            total = client.hgetall("portfolio:total")
            names = sorted(str(n) for n in client.smembers("strategies"))
            per = []
            for name in names:
                h = {str(k): str(v) for k, v in client.hgetall(f"portfolio:{name}").items()}
                per.append(f"{name}: {h.get('fills', 0)} fills, "
                           f"net {float(h.get('net_pnl', 0)):+,.2f}")
        except redis.RedisError as exc:
            self.out(f"status    Redis unavailable: {exc}")
            return
        if not total:
            self.out("status    waiting for the first orders ...")
            return
        t = {str(k): str(v) for k, v in total.items()}
        lag = ", ".join(f"{c.name} {c.lag}" for c in self.children if c.lag)
        self.out(f"status    orders {t.get('orders', 0)}, fills {t.get('fills', 0)}, "
                 f"rejections {t.get('rejections', 0)}, net P&L "
                 f"{float(t.get('net_pnl', 0)):+,.2f} INR  [" + "; ".join(per) + "]"
                 f"  lag: {lag or 'none'}")

    def _supervise(self, started: float) -> None:
        deadline = None if self.options.duration is None else started + self.options.duration
        client = redis.Redis.from_url(self.urls["redis"], decode_responses=True,
                                      socket_timeout=2)
        next_report = time.monotonic() + self.options.report_every
        next_health = time.monotonic() + 2.0
        while not self._stop and (deadline is None or time.monotonic() < deadline):
            now = time.monotonic()
            if now >= next_health:
                self._check_health()
                next_health = now + 2.0
            if self.options.report_every > 0 and now >= next_report:
                self._report(client)
                next_report = now + self.options.report_every
            self._check_servers()
            if self._stop:
                break
            for child in self.children:
                proc = child.process
                if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
                    code = proc.proc.returncode
                    proc.stop()
                    child.process = None
                    child.exits.append(code)
                    if now - child.started_at > 60:
                        child.restarts = 0  # it ran a good while: start the back-off over
                    delay = min(self.options.max_backoff, 0.25 * 2.0 ** child.restarts)
                    child.restarts += 1
                    child.next_start = now + delay
                    last = tail(child.log_path, 1).strip()
                    self.out(f"worker    {child.name} exited with code {code}; restarting in "
                             f"{delay:.2g} s (log: {child.log_path})"
                             + (f"\n          last line: {last[-300:]}" if code else ""))
                elif child.process is None and now >= child.next_start:
                    child.start()
                    self.out(f"worker    {child.name} restarted")
            time.sleep(0.2)

    def _check_servers(self) -> None:
        """Restart an embedded server that died (same port, same data); stop with a
        non-zero exit when it cannot come back whole."""
        for server in self.servers:
            if server.running:
                continue
            if not server.restartable:
                self.out(f"server    {server.name} died and cannot be restarted without "
                         f"losing every topic; stopping (exit 3)")
                self.exit_code = 3
                self._stop = True
                return
            self.out(f"server    {server.name} died; restarting it")
            try:
                server.restart()
            except ServerStartError as exc:
                self.out(f"server    {server.name} did not come back: {exc}; stopping (exit 3)")
                self.exit_code = 3
                self._stop = True
                return
            self.out(f"server    {server.name} is back")

    # -- shutdown ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self.children:
            self.out(f"stopping  {len(self.children)} workers ...")
        for child in self.children:
            if child.process is not None and child.process.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.proc.pid, signal.SIGTERM)
        for child in self.children:
            if child.process is not None:
                child.process.stop(timeout=15)
        for server in reversed(self.servers):
            self.out(f"stopping  {server.name}")
            server.stop()
        if self.children or self.servers:
            self.out("stopped")


class _ApacheServer:
    name = "kafka (apache)"
    restartable = True

    def __init__(self, broker: ApacheKafka) -> None:
        self._broker = broker

    @property
    def running(self) -> bool:
        return self._broker.is_running

    def restart(self) -> None:
        try:
            self._broker.restart()
        except RuntimeError as exc:
            raise ServerStartError(str(exc)) from exc

    def stop(self) -> None:
        self._broker.stop()
