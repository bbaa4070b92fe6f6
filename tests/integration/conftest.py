"""Session-scoped real servers: PostgreSQL, Redis and a Kafka-API broker.

The broker is chosen by ``ALPHASPT_TEST_KAFKA``: ``tansu`` (default, pip only) or
``apache`` (Apache Kafka 4.x in KRaft mode; run ``scripts/fetch-kafka.sh`` first).
Servers start once per session, on free loopback ports in a temporary directory, and are
stopped at the end.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphaspt.core.config import KafkaConfig
from alphaspt.local.servers import EmbeddedPostgres, EmbeddedRedis, Tansu

KAFKA_KIND = os.environ.get("ALPHASPT_TEST_KAFKA", "tansu")


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    # Not under pytest's basetemp: pytest resets /tmp/pytest-of-<user> to 0700 whenever a
    # session starts, and PostgreSQL (run as an unprivileged user when we are root) must
    # traverse the path to its data directory.
    path = Path(tempfile.mkdtemp(prefix="alphaspt-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(state_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(state_dir / "pg")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: EmbeddedPostgres) -> str:
    return postgres_server.url


@pytest.fixture(scope="session")
def redis_server(state_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(state_dir / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@contextlib.contextmanager
def broker(path: Path) -> Iterator[str]:
    """A fresh broker of the kind under test (``ALPHASPT_TEST_KAFKA``) in ``path``."""
    # gc.collect() before stopping: Kafka clients the tests dropped are destroyed while the
    # broker still answers, instead of reconnecting noisily after the session's summary.
    if KAFKA_KIND == "apache":
        from alphaspt.local.apache_kafka import ApacheKafka

        apache = ApacheKafka()
        apache.start()
        try:
            yield apache.bootstrap_servers
        finally:
            gc.collect()
            apache.stop()
    elif KAFKA_KIND == "tansu":
        tansu = Tansu(path)
        tansu.start()
        try:
            yield tansu.bootstrap_servers
        finally:
            gc.collect()
            tansu.stop()
    else:
        raise pytest.UsageError(f"ALPHASPT_TEST_KAFKA={KAFKA_KIND!r}: use tansu or apache")


@pytest.fixture(scope="session")
def kafka_bootstrap(state_dir: Path) -> Iterator[str]:
    with broker(state_dir / "tansu") as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap: str) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=kafka_bootstrap, partitions=1)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and key names within the shared broker."""
    return uuid.uuid4().hex[:8]
