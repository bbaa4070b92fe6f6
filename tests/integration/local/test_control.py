"""Operating a running `alphaspt up`: validation before start, status, the kill switch from
the CLI and from the manifests directory, refused edits; all against real servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alphaspt.core.config import KafkaConfig
from alphaspt.core.events import Codec, RiskDecision, RiskReason, Topics
from alphaspt.core.streaming.reader import read_to_end
from alphaspt.local.examples import write_examples
from alphaspt.local.process import free_port
from alphaspt.local.state import find_up
from tests.integration.local.test_up import Console, up_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("ALPHASPT_TEST_KAFKA", "tansu") != "tansu",
                       reason="alphaspt up runs its own embedded tansu; tested in the tansu pass"),
]


def alphaspt(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alphaspt", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_invalid_manifests_bad_settings_and_version_exit_before_anything_starts(
        tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    write_examples(manifests)
    momentum = manifests / "momentum.yaml"
    momentum.write_text(momentum.read_text().replace("threshold:", "threshhold:"))
    env = up_env(tmp_path / "state", free_port())
    result = alphaspt("up", "-f", str(manifests), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "momentum.yaml: TradingStrategy default/momentum-demo: spec.params.threshhold:" in line
    assert result.stdout == "" and not (tmp_path / "state").exists()

    momentum.write_text(momentum.read_text().replace("strategy: momentum ", "strategy: momo "))
    result = alphaspt("up", "-f", str(manifests), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "TradingStrategy default/momentum-demo: spec.strategy: unknown strategy 'momo'" \
        in result.stderr

    result = alphaspt("status", env={**env, "ALPHASPT_API__PORT": "abc"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "alphaspt: error: ALPHASPT_API__PORT: Input should be a valid integer, unable to "
        "parse string as an integer (got 'abc')"]

    result = alphaspt("--version", env=env, cwd=tmp_path)
    assert result.returncode == 0 and re.fullmatch(r"alphaspt \d+\.\d+\S*\n", result.stdout)


def _approvals_after(kafka: KafkaConfig, cutoff_ns: int) -> list[RiskDecision]:
    """Approved signals decided after ``cutoff_ns`` that open or add to a position
    (positions replayed from every approval before them, per strategy and symbol)."""
    codec = Codec(RiskDecision)
    position: dict[tuple[str, str], int] = {}
    opening = []
    for msg in read_to_end(kafka, Topics.SIGNALS_VALIDATED):
        decision = codec.decode(msg.value())
        s = decision.signal
        key = (s.strategy, s.symbol)
        before = position.get(key, 0)
        after = before + s.side.sign * s.quantity
        position[key] = after
        if decision.ingest_ts > cutoff_ns and abs(after) > abs(before):
            opening.append(decision)
    return opening


def _log(state: Path, worker: str) -> list[str]:
    return [line for line in (state / "logs" / f"{worker}.log").read_text().splitlines()
            if "control" in line]


def _rejections_after(kafka: KafkaConfig, since_ns: int) -> list[RiskDecision]:
    codec = Codec(RiskDecision)
    return [d for d in (codec.decode(m.value())
                        for m in read_to_end(kafka, Topics.SIGNALS_REJECTED))
            if d.ingest_ts > since_ns and d.reason is RiskReason.KILL_SWITCH]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """Outside pytest's temporary root: a concurrent pytest session resets that to 0700,
    which locks out the embedded PostgreSQL's own user when we run as root."""
    path = Path(tempfile.mkdtemp(prefix="alphaspt-up-"))
    yield path / "state"
    shutil.rmtree(path, ignore_errors=True)


def test_status_kill_and_the_kill_switch_in_the_manifests_of_a_running_up(
        tmp_path: Path, state_dir: Path) -> None:
    manifests = tmp_path / "m"
    write_examples(manifests)
    state = state_dir
    env = {**up_env(state, free_port()), "PYTHONUNBUFFERED": "1"}
    up = Console(["up", "-f", str(manifests), "--for", "220"], cwd=tmp_path, env=env)
    lines = up.lines
    wait_for = up.wait_for

    try:
        assert wait_for(lambda s: s.startswith("ready in"), 60) is not None, "\n".join(lines)
        assert wait_for(lambda s: re.match(r"status\s+orders [1-9]", s), 60) is not None, \
            "\n".join(lines)
        assert up.proc.poll() is None and (state / "up.json").exists(), "\n".join(lines)
        info = find_up(state).info
        assert "@" not in str(info["redis"]) or ":" not in str(info["redis"]).split("@")[0][8:]
        assert (state / "up.json").stat().st_mode & 0o777 == 0o600
        kafka = KafkaConfig(bootstrap_servers=str(info["kafka"]))

        status = alphaspt("status", env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        for name in ("momentum-demo", "mean-reversion-demo", "market-feed", "risk-manager",
                     "strategy-momentum-demo", "api"):
            assert re.search(rf"^{name}\s", status.stdout, re.M), status.stdout
        assert re.search(r"^mean-reversion-demo\s+mean_reversion\s+Running\s+paper-default",
                         status.stdout, re.M), status.stdout

        # The CLI's kill switch: nothing opens 2 s after it returns; signals are refused.
        killed = alphaspt("kill", env=env, cwd=tmp_path)
        t_kill = time.time_ns()
        assert killed.returncode == 0, killed.stderr
        assert "published KILL_SWITCH on" in killed.stdout
        time.sleep(5)
        late = _approvals_after(kafka, t_kill + 2_000_000_000)
        assert late == [], (t_kill, [(d.ingest_ts, d.signal.strategy, d.signal.symbol)
                                     for d in late], _log(state, "risk-manager"))
        assert _rejections_after(kafka, t_kill), "no signal was refused by the kill switch"

        # Released: trading goes on.
        t_off = time.time_ns()
        assert alphaspt("kill", "--off", env=env, cwd=tmp_path).returncode == 0
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and not _approvals_after(kafka, t_off):
            time.sleep(1)
        assert _approvals_after(kafka, t_off), "no new position after kill --off"

        # The kill switch in the manifests directory of the running up.
        profile = manifests / "risk-profile.yaml"
        t_edit = time.time_ns()
        profile.write_text(profile.read_text().replace("killSwitch: false", "killSwitch: true"))
        assert wait_for(lambda s: s.startswith("applied   killSwitch paper-default on"),
                        5) is not None, "\n".join(lines[-20:])
        time.sleep(5)
        late = _approvals_after(kafka, t_edit + 2_000_000_000)
        assert late == [], [(d.signal.strategy, d.signal.symbol) for d in late]

        # kill --flatten: every position of both strategies squared off, in Redis too.
        flat = alphaspt("kill", "--flatten", env=env, cwd=tmp_path)
        assert flat.returncode == 0, flat.stderr
        assert "FLATTEN" in flat.stdout, flat.stdout
        client = redis.Redis.from_url(str(info["redis"]), decode_responses=True)

        def open_positions() -> dict[str, int]:
            out = {}
            for name in ("momentum-demo", "mean-reversion-demo"):
                for k, v in client.hgetall(f"portfolio:{name}").items():
                    if k.startswith("position:") and int(v) != 0:
                        out[f"{name}/{k[9:]}"] = int(v)
            return out

        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and open_positions():
            time.sleep(1)
        assert open_positions() == {}, (open_positions(), _log(state, "trading-engine")[-2000:])

        # An invalid edit is refused in one line; up goes on with what it runs.
        mr = manifests / "mean-reversion.yaml"
        mr.write_text(mr.read_text().replace("entryZ:", "entryZZ:"))
        assert wait_for(lambda s: s.startswith("refused   ") and "spec.params.entryZZ" in s,
                        5) is not None, "\n".join(lines[-10:])
        assert up.proc.poll() is None
        assert not any("exited with code" in s for s in lines), "\n".join(lines)
    finally:
        up.stop()
    assert not (state / "up.json").exists()
