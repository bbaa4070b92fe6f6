"""The whole pipeline as a user runs it: ``alphaspt up`` against the session's PostgreSQL and
Redis, and a broker of its own."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alphaspt.local.process import free_port
from tests.integration.conftest import broker

REPO = Path(__file__).resolve().parents[3]


class Up:
    def __init__(self, proc: subprocess.Popen[str], namespace: str, log: Path) -> None:
        self.proc = proc
        self.namespace = namespace
        self.log = log

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def kafka_bootstrap(tmp_path: Path) -> Iterator[str]:
    """A broker of its own for each pipeline test: every run of ``up`` reads and writes the
    shared topics (``market.ticks`` ...), and a replay feed resumes after the ticks already
    there, so one test's ticks must never reach another's pipeline."""
    with broker(tmp_path / "kafka") as bootstrap:
        yield bootstrap


@pytest.fixture
def run_up(tmp_path: Path, postgres_url: str, redis_url: str, kafka_bootstrap: str
           ) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def start(manifests: Path, *args: str) -> Up:
        namespace = f"t{uuid.uuid4().hex[:6]}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")},
            "ALPHASPT_POSTGRES__URL": postgres_url,
            "ALPHASPT_REDIS__URL": redis_url,
            "ALPHASPT_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "ALPHASPT_NAMESPACE": namespace,
            "ALPHASPT_API__PORT": str(free_port()),
            "ALPHASPT_LOCAL__STATE_DIR": str(tmp_path / "state"),
            "ALPHASPT_SETTINGS_FILE": "/nonexistent.toml",
        }
        log = tmp_path / "up.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "alphaspt", "up", "-f", str(manifests), *args],
            env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
        )
        up = Up(proc, namespace, log)
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()
    logs = tmp_path / "state" / "logs"
    artifacts = os.environ.get("ALPHASPT_TEST_ARTIFACTS")
    if artifacts and logs.exists():
        shutil.copytree(logs, Path(artifacts) / f"pipeline-logs-{time.time_ns()}",
                        dirs_exist_ok=True)
