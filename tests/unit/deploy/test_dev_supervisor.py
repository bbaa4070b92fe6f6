"""helm/alphaspt/files/dev-supervisor.py: restarts its command when Tilt writes the trigger.

Run as a real process (it installs signal handlers), with a child that records each start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SUPERVISOR = REPO / "helm" / "alphaspt" / "files" / "dev-supervisor.py"
CHILD = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(60)"


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _starts(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive: reaped by nobody but the supervisor, which waits on it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_restarts_on_trigger_and_stops_on_sigterm(tmp_path: Path) -> None:
    trigger, log = tmp_path / ".restart", tmp_path / "starts"
    proc = subprocess.Popen([sys.executable, str(SUPERVISOR), str(trigger), "--",
                             sys.executable, "-c", CHILD, str(log)])
    try:
        _wait_for(lambda: len(_starts(log)) == 1)
        first = _starts(log)[0]
        trigger.write_text("Tue Jan  1 00:00:00 UTC 2030\n")  # what Tilt's run step writes
        _wait_for(lambda: len(_starts(log)) == 2)
        second = _starts(log)[1]
        assert second != first
        _wait_for(lambda: not _alive(first))
        time.sleep(0.5)  # no change: no further restart
        assert len(_starts(log)) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM  # the child's own status
        assert not _alive(second)
    finally:
        proc.kill()
        proc.wait()
        for pid in _starts(log):  # never leave a child behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_command_that_exits_ends_the_supervisor_with_its_status(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SUPERVISOR), str(tmp_path / ".restart"), "--",
                             sys.executable, "-c", "raise SystemExit(3)"], timeout=10)
    assert result.returncode == 3


def test_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SUPERVISOR), str(tmp_path / "x"), "true"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert "TRIGGER_FILE -- COMMAND" in result.stderr
