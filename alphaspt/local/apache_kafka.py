"""A real Apache Kafka broker (KRaft, single combined broker+controller node) in a subprocess.

Used by integration tests and benchmarks, and available to the local runtime. The jars come
from Maven Central through ``scripts/fetch-kafka.sh`` (the distribution tarball is not
reachable here); this module only needs ``java`` (17+) and that libs directory.

Example::

    with ApacheKafka() as kafka:
        producer = confluent_kafka.Producer({"bootstrap.servers": kafka.bootstrap_servers})

Each instance owns a fresh temporary directory (config, data, logs) on free loopback ports;
``stop()`` terminates the JVM (SIGTERM, then SIGKILL) and removes the directory.
"""

from __future__ import annotations

import atexit
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from alphaspt.local.process import die_with_parent, free_port, tail

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "ApacheKafka",
    "KafkaNotInstalledError",
    "KafkaStartError",
    "find_kafka_libs",
]

#: Version fetched by scripts/fetch-kafka.sh unless ALPHASPT_KAFKA_VERSION says otherwise.
DEFAULT_KAFKA_VERSION = "4.1.1"

#: Lean JVM flags for a 2-core CI machine: small fixed heap, serial GC, fast start-up.
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Xss512k",
    "-Djava.awt.headless=true",
)

_FETCH_HINT = (
    "run scripts/fetch-kafka.sh (needs Java 17+ and Maven) to download it from Maven Central"
)
_STARTED_MARKER = "Kafka Server started"
_ADDRESS_IN_USE = re.compile(r"Address already in use|BindException")

_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <File name="file" fileName="{log_file}" append="true" immediateFlush="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="{level}"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients.NetworkClient" level="WARN"/>
  </Loggers>
</Configuration>
"""


class KafkaNotInstalledError(RuntimeError):
    """The broker's jars are not where we look for them."""


class KafkaStartError(RuntimeError):
    """The broker did not come up; the message carries the tail of its log."""


def _cache_dir() -> Path:
    env = os.environ.get("ALPHASPT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "alphaspt"


def _has_kafka_jar(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


def find_kafka_libs() -> Path:
    """Return the directory holding the Kafka broker's jars.

    ``ALPHASPT_KAFKA_LIBS`` wins; otherwise ``<cache>/kafka-<version>/libs`` where ``<cache>``
    is ``ALPHASPT_CACHE_DIR`` or ``~/.cache/alphaspt`` and ``<version>`` is
    ``ALPHASPT_KAFKA_VERSION`` or :data:`DEFAULT_KAFKA_VERSION`; failing that, the newest
    complete ``kafka-*`` directory in the cache.
    """
    env = os.environ.get("ALPHASPT_KAFKA_LIBS")
    if env:
        libs = Path(env)
        if not _has_kafka_jar(libs):
            raise KafkaNotInstalledError(
                f"ALPHASPT_KAFKA_LIBS={env} holds no kafka_2.13-*.jar; unset it or {_FETCH_HINT}"
            )
        return libs
    cache = _cache_dir()
    version = os.environ.get("ALPHASPT_KAFKA_VERSION", DEFAULT_KAFKA_VERSION)
    preferred = cache / f"kafka-{version}" / "libs"
    if _has_kafka_jar(preferred):
        return preferred
    candidates = sorted(
        (d / "libs" for d in cache.glob("kafka-*") if (d / ".complete").is_file()),
        key=lambda p: _version_key(p.parent.name.removeprefix("kafka-")),
        reverse=True,
    )
    for libs in candidates:
        if _has_kafka_jar(libs):
            return libs
    raise KafkaNotInstalledError(f"Apache Kafka {version} not found in {preferred}: {_FETCH_HINT}")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found:
        return found
    raise KafkaNotInstalledError("java not found on PATH (Apache Kafka 4.x needs Java 17+)")


def _random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).

    Never starting with ``-``: StorageTool would read such an id as an option (about one
    start in 64 failed that way)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


class ApacheKafka:
    """A single-node KRaft Apache Kafka broker on loopback, for tests and benchmarks.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``bootstrap_servers``
    is valid while it runs. ``extra_properties`` override or add server.properties entries.
    """

    def __init__(
        self,
        *,
        libs_dir: Path | str | None = None,
        host: str = "127.0.0.1",
        heap: str = "512m",
        jvm_opts: Sequence[str] = DEFAULT_JVM_OPTS,
        extra_properties: Mapping[str, str | int | bool] | None = None,
        start_timeout: float = 90.0,
        stop_timeout: float = 20.0,
        log_level: str = "INFO",
        java: str | None = None,
    ) -> None:
        self._libs_dir = Path(libs_dir) if libs_dir is not None else None
        self.host = host
        self.heap = heap
        self.jvm_opts = tuple(jvm_opts)
        self.extra_properties: dict[str, str | int | bool] = dict(extra_properties or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_level = log_level
        self._java = java
        self.cluster_id = _random_cluster_id()
        self.port: int | None = None
        self.controller_port: int | None = None
        self.workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None

    # -- public API ------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the PLAINTEXT listener; only while the broker runs."""
        if self._process is None or self.port is None:
            raise RuntimeError("ApacheKafka is not running; call start() first")
        return f"{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        """The broker's log4j2 log file (inside the temporary directory)."""
        if self.workdir is None:
            raise RuntimeError("ApacheKafka has no working directory; call start() first")
        return self.workdir / "logs" / "server.log"

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the broker log and of the JVM's own stdout/stderr."""
        if self.workdir is None:
            return "<not started>"
        console = tail(self.workdir / "logs" / "console.log", lines)
        return f"--- server.log ---\n{tail(self.log_path, lines)}\n--- console ---\n{console}"

    def start(self) -> ApacheKafka:
        """Format storage, launch the JVM and wait until the broker serves metadata."""
        if self._process is not None:
            raise RuntimeError("ApacheKafka already started")
        libs = self._libs_dir if self._libs_dir is not None else find_kafka_libs()
        if not _has_kafka_jar(libs):
            raise KafkaNotInstalledError(f"no kafka_2.13-*.jar in {libs}: {_FETCH_HINT}")
        java = self._java or _find_java()
        attempts = 3
        for attempt in range(1, attempts + 1):
            self.workdir = Path(tempfile.mkdtemp(prefix="alphaspt-kafka-"))
            try:
                self._launch(java, libs)
                self._wait_ready()
            except KafkaStartError as exc:
                port_clash = _ADDRESS_IN_USE.search(str(exc)) is not None
                self.stop()
                if port_clash and attempt < attempts:
                    continue  # another process grabbed our free port; pick new ones
                raise
            except BaseException:
                self.stop()
                raise
            atexit.register(self.stop)
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGTERM the broker, SIGKILL it after ``stop_timeout``, remove the temp dir."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        stdout = self._stdout
        self._stdout = None
        if stdout is not None:
            stdout.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.port = None
        self.controller_port = None

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running on {self.host}:{self.port}" if self.is_running else "stopped"
        return f"<ApacheKafka {state}>"

    # -- internals -------------------------------------------------------------------------

    def server_properties(self) -> dict[str, str]:
        """The server.properties written for the current ports and directory."""
        assert self.workdir is not None
        assert self.port is not None
        assert self.controller_port is not None
        host = self.host
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # Small internal topics: created on first use, so fewer partitions = faster first
            # consumer group / transaction. Override via extra_properties for benchmarks.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        }
        for key, value in self.extra_properties.items():
            props[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return props

    def restart(self) -> None:
        """Start the broker again after it died: same ports, same data (nothing is lost
        that it had acknowledged)."""
        if self.workdir is None or self.port is None:
            raise RuntimeError("ApacheKafka.restart() needs a broker that was started")
        if self._process is not None and self._process.poll() is None:
            return
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        libs = self._libs_dir if self._libs_dir is not None else find_kafka_libs()
        self._launch(self._java or _find_java(), libs, keep_ports=True)
        self._wait_ready()

    def _launch(self, java: str, libs: Path, *, keep_ports: bool = False) -> None:
        assert self.workdir is not None
        if not keep_ports or self.port is None or self.controller_port is None:
            self.port = free_port(self.host)
            self.controller_port = free_port(self.host)
            while self.controller_port == self.port:
                self.controller_port = free_port(self.host)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        config = self.workdir / "server.properties"
        config.write_text(
            "".join(f"{k}={v}\n" for k, v in self.server_properties().items()), encoding="utf-8"
        )
        log4j = self.workdir / "log4j2.xml"
        log4j.write_text(
            _LOG4J2_XML.format(log_file=logs / "server.log", level=self.log_level),
            encoding="utf-8",
        )
        base = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *self.jvm_opts,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            f"{libs}/*",  # expanded by the JVM, not a shell
        ]
        fmt = subprocess.run(
            [
                *base,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                self.cluster_id,
                "--config",
                str(config),
                "--standalone",
                "--ignore-formatted",
            ],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if fmt.returncode != 0:
            output = (fmt.stdout + fmt.stderr).decode("utf-8", errors="replace")
            raise KafkaStartError(
                f"kafka StorageTool format failed (exit {fmt.returncode}):\n{output[-4000:]}"
            )
        stdout = open(logs / "console.log", "ab")  # noqa: SIM115 - closed in stop()
        self._stdout = stdout
        self._process = subprocess.Popen(
            [*base, "kafka.Kafka", str(config)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )

    def _wait_ready(self) -> None:
        assert self._process is not None
        assert self.port is not None
        deadline = time.monotonic() + self.start_timeout
        log_path = self.log_path
        while True:
            code = self._process.poll()
            if code is not None:
                raise KafkaStartError(
                    f"Kafka broker exited with code {code} during start-up\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise KafkaStartError(
                    f"Kafka broker not ready after {self.start_timeout:g}s\n{self.log_tail()}"
                )
            if _log_contains(log_path, _STARTED_MARKER) and self._port_open():
                break
            time.sleep(0.1)
        self._check_metadata(max(1.0, deadline - time.monotonic()))

    def _port_open(self) -> bool:
        assert self.port is not None
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _check_metadata(self, timeout: float) -> None:
        """Ask the broker for cluster metadata with confluent-kafka, when it is installed."""
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:  # pragma: no cover - the log marker and open port suffice
            return
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            metadata = admin.list_topics(timeout=timeout)
        except Exception as exc:
            raise KafkaStartError(
                f"Kafka broker started but does not answer metadata requests: {exc}\n"
                f"{self.log_tail()}"
            ) from exc
        if not metadata.brokers:
            raise KafkaStartError(f"Kafka broker reports no brokers\n{self.log_tail()}")


def _log_contains(path: Path, needle: str) -> bool:
    try:
        with path.open("rb") as fh:
            return needle.encode() in fh.read()
    except FileNotFoundError:
        return False
