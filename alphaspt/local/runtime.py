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

import msgspec
import redis
from pydantic import SecretStr

from alphaspt.brokers.kite import KITE_TOKEN_FILE
from alphaspt.core.config import MarketConfig, Settings
from alphaspt.core.db import ConfigRepository, create_engine, migrate
from alphaspt.core.events import Command, Topics, now_ns
from alphaspt.core.streaming import EventProducer, TopicSpec, admin_client, ensure_topics
from alphaspt.exceptions import InvalidConfiguration, ServerStartError
from alphaspt.local.apache_kafka import ApacheKafka
from alphaspt.local.follow import Changes, DirectoryWatch, diff
from alphaspt.local.kite import LocalKiteSim, live
from alphaspt.local.manifests import (
    check_manifests,
    format_problems,
    load_manifests,
    scan_replay,
)
from alphaspt.local.process import ManagedProcess, fetch_status, free_port, port_open, tail
from alphaspt.local.servers import EmbeddedPostgres, EmbeddedRedis, Tansu
from alphaspt.local.state import (
    STATUS_FILE,
    UP_FILE,
    read_portfolio,
    redact,
    without_password,
    write_private,
)
from alphaspt.operator.control import control_event
from alphaspt.operator.planning import (
    RISK_PROFILE,
    TRADING_STRATEGY,
    Plan,
    PlanConfig,
    TopicPlan,
    WorkerSpec,
)
from alphaspt.workers import SHARED_STAGES

__all__ = ["Child", "LocalRuntime", "UpOptions", "load_manifests", "redact"]

ISSUER = "alphaspt up"


class _Server(Protocol):
    name: str
    restartable: bool

    @property
    def running(self) -> bool: ...

    def restart(self) -> None: ...

    def stop(self) -> None: ...


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
    kite_sim: bool = False
    """Start the Kite-protocol simulator and run the strategies in Live mode against it."""
    follow_every: float = 0.5
    """Seconds between looks at the manifests directory (0: do not follow it)."""


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
        self.kite: LocalKiteSim | None = None
        self._plan_config = PlanConfig(namespace=settings.namespace,
                                       partitions=settings.kafka.partitions)
        self._known_instruments: frozenset[str] | None = None
        self.running_plan: Plan | None = None
        self._producer: EventProducer | None = None
        self._refused: str | None = None
        self._retry_follow = False
        self._started_wall = time.time()

    # -- entry point ---------------------------------------------------------------------

    def up(self) -> int:
        started = time.monotonic()
        desired = self._validate()
        self._lock_state_dir()
        self._check_api_port()
        self._install_signal_handlers()
        try:
            self._start_servers()
            if self._stop:
                return 0
            if self.options.kite_sim:
                self._start_kite_sim()
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
            if self.options.follow_every > 0:
                self.out(f"following {self.options.manifests}: edits apply as they are "
                         "saved; `alphaspt status`, `pause`, `resume`, `kill` in another "
                         "terminal")
            self._write_up_file(url)
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
            "postgres", s.postgres.url,
            lambda: EmbeddedPostgres(self.state_dir / "postgres", announce=self.out))
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

    def _validate(self) -> Plan:
        """Check everything the workers would refuse (manifests, the replay file), before
        any server starts; :class:`InvalidConfiguration` with one line per problem."""
        if self.options.feed == "replay" and self.options.replay is not None:
            scan, problems = scan_replay(self.options.replay)
            if scan is None:
                raise InvalidConfiguration("\n".join(format_problems(problems)))
            self._known_instruments = scan.symbols
            if scan.skipped:
                self.out(f"replay    {scan.ticks} ticks of {len(scan.symbols)} symbols; "
                         f"{scan.skipped} malformed rows will be skipped (first: "
                         f"{scan.first_skipped})")
        desired = self._check()
        if isinstance(desired, list):
            raise InvalidConfiguration("\n".join(desired))
        return desired

    def _check(self) -> Plan | list[str]:
        """The plan of the manifests as they are now, or the lines saying why not."""
        desired, problems = check_manifests(
            self.options.manifests, self._plan_config, known_instruments=self._known_instruments,
            adapt=live if self.options.kite_sim else None)
        if desired is None:
            return format_problems(problems)
        return desired

    def _kafka(self) -> EventProducer:
        if self._producer is None:
            kafka = self.settings.kafka.model_copy(
                update={"bootstrap_servers": self.urls["kafka"]})
            self._producer = EventProducer(kafka)
        return self._producer

    def _start_kite_sim(self) -> None:
        self.kite = LocalKiteSim(self.state_dir)
        kafka = self.settings.kafka.model_copy(update={"bootstrap_servers": self.urls["kafka"]})
        self.kite.start(kafka)
        self.out(f"kite-sim  API root {self.kite.server.api_root}, ticker root "
                 f"{self.kite.server.ticker_root} (logged in; Live orders go there)")

    def _ensure_topics(self, topics: Sequence[TopicPlan]) -> None:
        kafka = self.settings.kafka.model_copy(update={"bootstrap_servers": self.urls["kafka"]})
        ensure_topics(
            admin_client(kafka),
            [TopicSpec(t.name, t.partitions, dict(t.config)) for t in topics],
            replication_factor=kafka.replication_factor,
        )

    def _announce(self, command: Command, kind: str = "*", name: str = "*",
                  value: bool = True) -> None:
        """A Control on ``control.commands`` (the operator's event), sent at once."""
        event = msgspec.structs.replace(
            control_event(command, kind, self.settings.namespace, name, now_ns(),
                          value=value), issued_by=ISSUER)
        producer = self._kafka()
        producer.send(Topics.CONTROL, event.target, event)
        producer.flush(10)

    def _apply(self, desired: Plan) -> None:
        asyncio.run(self._store(desired, prune=True))
        self._ensure_topics(desired.topics)
        self._announce(Command.CONFIG_CHANGED)
        self.running_plan = desired
        names = ", ".join(f"{r.name} ({r.spec.strategy}, {r.spec.desired_state.value})"
                          for r in desired.strategies)
        self.out(f"applied   {len(desired.strategies)} strategies [{names}], "
                 f"{len(desired.risk_profiles)} risk profiles, {len(desired.topics)} topics")

    async def _store(self, desired: Plan | Changes, *, prune: bool = False) -> None:
        """Upsert the rows; with ``prune`` archive every strategy not in ``desired``
        (``kubectl apply --prune``), else the ones ``desired`` removes."""
        url = self.urls["postgres"]
        await migrate(url)
        repo = ConfigRepository(create_engine(url))
        profiles = desired.risk_profiles if isinstance(desired, Plan) else desired.profiles
        try:
            for p in profiles:
                await repo.upsert_risk_profile(**p.upsert_args())
            for s in desired.strategies:
                await repo.upsert_strategy(**s.upsert_args())
            if isinstance(desired, Changes):
                for name in desired.removed:
                    await repo.archive_strategy(self.settings.namespace, name)
                return
            wanted = {(s.namespace, s.name) for s in desired.strategies}
            for record in await repo.list_strategies(self.settings.namespace):
                if (record.namespace, record.name) not in wanted:
                    await repo.archive_strategy(record.namespace, record.name)
                    self.out(f"archived  strategy {record.name} (not in the manifests)")
        finally:
            await repo.close()

    # -- following the manifests ---------------------------------------------------------

    def _follow(self) -> None:
        """Apply an edit of the manifests directory, or refuse it and keep running."""
        desired = self._check()
        if isinstance(desired, list):
            message = "; ".join(desired)
            if message != self._refused:
                self.out(f"refused   {message} (still running the last valid manifests)")
                self._refused = message
            return
        self._retry_follow = False
        assert self.running_plan is not None
        changes = diff(self.running_plan, desired)
        if changes.empty:
            self._refused = None  # back to what runs
            return
        t0 = time.monotonic()
        try:
            self._apply_changes(changes)
        except Exception as exc:  # a server hiccup: the next look tries again
            message = f"could not apply the edit: {exc}"
            if message != self._refused:
                self.out(f"refused   {message} (retrying every {self.options.follow_every:g} s)")
                self._refused = message
            self._retry_follow = True
            return
        self._refused = None
        self.running_plan = desired
        self.out(f"applied   {changes.describe()} in {time.monotonic() - t0:.2f} s")

    def _apply_changes(self, changes: Changes) -> None:
        """In the operator's order: stop trading first (KILL_SWITCH, PAUSE), then the rows
        and CONFIG_CHANGED, then RESUME, then the workers (stopping one waits for it)."""
        for profile, engaged in changes.kill_switch:
            if engaged:
                self._announce(Command.KILL_SWITCH, RISK_PROFILE, profile, True)
        for name in changes.pause:
            self._announce(Command.PAUSE, TRADING_STRATEGY, name)
        if changes.topics:
            self._ensure_topics(changes.topics)
        asyncio.run(self._store(changes))
        for profile_row in changes.profiles:
            self._announce(Command.CONFIG_CHANGED, RISK_PROFILE, profile_row.name)
        for strategy_row in changes.strategies:
            self._announce(Command.CONFIG_CHANGED, TRADING_STRATEGY, strategy_row.name)
        if changes.removed:
            self._announce(Command.CONFIG_CHANGED)
        for profile, engaged in changes.kill_switch:
            if not engaged:
                self._announce(Command.KILL_SWITCH, RISK_PROFILE, profile, False)
        for name in changes.resume:
            self._announce(Command.RESUME, TRADING_STRATEGY, name)
        python = [sys.executable, "-m", "alphaspt"]
        logs = self.state_dir / "logs"
        for worker_name in changes.stop:  # last: PAUSE has already stopped its trading
            self._stop_child(worker_name)
        for worker in changes.restart:
            self._stop_child(worker.name)
        for worker in (*changes.restart, *changes.start):
            child = self._strategy_child(worker, python, logs)
            self.children.insert(len(self.children) - 1, child)  # the API stays last
            child.start()
            self.out(f"worker    {worker.name} started")

    def _stop_child(self, name: str) -> None:
        for child in list(self.children):
            if child.name == name:
                if child.process is not None:
                    child.process.stop(timeout=15)
                self.children.remove(child)
                self.out(f"worker    {name} stopped")

    # -- workers -------------------------------------------------------------------------

    def _market(self) -> MarketConfig:
        """``Settings.market`` with absolute paths; an ``instruments.csv`` next to the
        manifests is the instruments file unless one is configured."""
        market = self.settings.market
        found = self.options.manifests / "instruments.csv"
        instruments = market.instruments_file or (found if found.is_file() else None)
        overrides = market.calendar_overrides
        return market.model_copy(update={
            "instruments_file": instruments.resolve() if instruments else None,
            "calendar_overrides": overrides.resolve() if overrides else None,
        })

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
            # A replay decides on its events' own time, so restarts cannot change it; the
            # mock market runs on its own simulated session clock (feeds/mock.py).
            "ALPHASPT_CLOCK": "event" if self.options.feed in ("replay", "mock")
                              else self.settings.clock,
            # The exchange's rules and the account's caps, as JSON (paths made absolute).
            "ALPHASPT_MARKET": self._market().model_dump_json(),
            "ALPHASPT_RISK": self.settings.risk.model_dump_json(),
            "ALPHASPT_SETTINGS_FILE": os.environ.get("ALPHASPT_SETTINGS_FILE",
                                                     "config/settings.toml"),
            "PYTHONUNBUFFERED": "1",
        })
        # Live strategies: the Kite settings reach the workers, the API secret does not
        # (only `alphaspt kite login` needs it); the token file is the state dir's.
        env.update({k: v for k, v in os.environ.items() if k.startswith("ALPHASPT_KITE__")
                    and k != "ALPHASPT_KITE__API_SECRET"})
        env.setdefault("ALPHASPT_KITE__TOKEN_FILE", str(self.state_dir / KITE_TOKEN_FILE))
        if self.kite is not None:
            env.update(self.kite.env())
        env.update(extra)
        return env

    def _start_workers(self, desired: Plan) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        logs.chmod(0o700)  # the owner only, also when it existed before
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
        feed = [c for c in self.children if c.name == "market-feed"]
        for child in self.children:
            if child not in feed:
                child.start()
        self._await_assignments(timeout=60.0)
        for child in feed:
            child.start()

    def _await_assignments(self, timeout: float) -> None:
        """Until every stage holds its input partitions (``/status`` ``assigned``), so that
        the feed's first ticks are not queued behind the group joins: a replay started at
        once began with seconds of backlog. A stage that exits or is still joining after
        ``timeout`` is named, and the feed starts anyway."""
        host = self.settings.metrics.host
        deadline = time.monotonic() + timeout

        def joining(child: Child) -> bool:
            proc = child.process.proc if child.process is not None else None
            if child.health_port is None or proc is None or proc.poll() is not None:
                return False
            return not (fetch_status(host, child.health_port) or {}).get("assigned")

        waiting = [c for c in self.children if c.health_port is not None]
        while waiting and not self._stop and time.monotonic() < deadline:
            waiting = [c for c in waiting if joining(c)]
            if waiting:
                time.sleep(0.1)
        if waiting and not self._stop:
            self.out(f"starting the feed though {', '.join(c.name for c in waiting)} "
                     f"{'holds' if len(waiting) == 1 else 'hold'} no input partition after "
                     f"{timeout:g} s")

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
            views, t = read_portfolio(client)
        except redis.RedisError as exc:
            self.out(f"status    Redis unavailable: {exc}")
            return
        if not views:
            self.out("status    waiting for the first orders ...")
            return
        per = [f"{v.name}: {v.fills} fills, net {v.net_pnl:+,.2f}" for v in views]
        lag = ", ".join(f"{c.name} {c.lag}" for c in self.children if c.lag)
        self.out(f"status    orders {t.orders}, fills {t.fills}, "
                 f"rejections {t.rejections}, net P&L "
                 f"{t.net_pnl:+,.2f} INR  [" + "; ".join(per) + "]"
                 f"  lag: {lag or 'none'}")

    # -- what other commands read (alphaspt status, pause, resume, kill) ----------------

    def _write_up_file(self, api_url: str) -> None:
        write_private(self.state_dir / UP_FILE, {
            "pid": os.getpid(),
            "started_at": self._started_wall,
            "state_dir": str(self.state_dir),
            "manifests": str(self.options.manifests.resolve()),
            "namespace": self.settings.namespace,
            "kafka": self.urls["kafka"],
            "redis": without_password(self.urls["redis"]),
            "postgres": without_password(self.urls["postgres"]),
            "api": api_url,
        })

    def _write_status(self) -> None:
        desired = self.running_plan
        now = time.monotonic()
        write_private(self.state_dir / STATUS_FILE, {
            "pid": os.getpid(),
            "updated_at": time.time(),
            "manifests": str(self.options.manifests.resolve()),
            "refused": self._refused,
            "strategies": [] if desired is None else [{
                "name": r.name, "strategy": r.spec.strategy,
                "desired_state": r.spec.desired_state.value, "mode": r.spec.mode.value,
                "risk_profile": r.spec.risk_profile_ref,
                "instruments": list(r.spec.instruments),
            } for r in desired.strategies],
            "risk_profiles": [] if desired is None else [{
                "name": r.name, "kill_switch": r.spec.kill_switch,
            } for r in desired.risk_profiles],
            "workers": [{
                "name": c.name,
                "pid": c.process.proc.pid if c.process and c.process.proc else None,
                "alive": bool(c.process and c.process.running),
                "uptime": round(now - c.started_at, 1) if c.process else 0.0,
                "restarts": len(c.exits),
                "last_exit": c.exits[-1] if c.exits else None,
                "lag": c.lag,
                "reason": c.reason,
                "log": str(c.log_path),
            } for c in self.children],
        })

    def _supervise(self, started: float) -> None:
        deadline = None if self.options.duration is None else started + self.options.duration
        client = redis.Redis.from_url(self.urls["redis"], decode_responses=True,
                                      socket_timeout=2)
        next_report = time.monotonic() + self.options.report_every
        next_health = time.monotonic() + 2.0
        next_status = next_follow = time.monotonic()
        watch = DirectoryWatch(self.options.manifests)
        while not self._stop and (deadline is None or time.monotonic() < deadline):
            now = time.monotonic()
            if self.options.follow_every > 0 and now >= next_follow:
                if watch.changed() or self._retry_follow:
                    self._follow()
                next_follow = time.monotonic() + self.options.follow_every
            if now >= next_health:
                self._check_health()
                next_health = now + 2.0
            if now >= next_status:
                self._write_status()
                next_status = now + 1.0
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
        for name in (UP_FILE, STATUS_FILE):
            with contextlib.suppress(OSError):
                (self.state_dir / name).unlink()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close()
        if self.children:
            self.out(f"stopping  {len(self.children)} workers ...")
        for child in self.children:
            if child.process is not None and child.process.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.proc.pid, signal.SIGTERM)
        for child in self.children:
            if child.process is not None:
                child.process.stop(timeout=15)
        if self.kite is not None:
            self.out(f"kite-sim  {self.kite.summary()}")
            self.kite.stop()
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
