"""Development only (chart value development.liveUpdate): run a command, restart it on a signal.

Tilt's live update copies changed Python files into the running container, then writes the
trigger file; this supervisor sees the trigger's modification time change, stops the command
(SIGTERM, then SIGKILL after a grace period) and starts it again, so the new code runs without
a new image or a new pod. SIGTERM/SIGINT to the supervisor stop the command and end the
supervisor with the command's status; a command that exits on its own ends the supervisor
too (a crash stays a crash, and the kubelet restarts the container as usual).

    python dev-supervisor.py TRIGGER_FILE -- COMMAND [ARG...]

Standard library only: it runs inside the unchanged production image.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

POLL_SECONDS = 0.2
GRACE_SECONDS = 20.0


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _stop(child: subprocess.Popen[bytes], grace: float) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


def _exit_status(returncode: int) -> int:
    """A shell-style status: 128 + N for a command killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def supervise(
    trigger: str,
    command: list[str],
    *,
    poll: float = POLL_SECONDS,
    grace: float = GRACE_SECONDS,
) -> int:
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    seen = _mtime(trigger)
    child = subprocess.Popen(command)
    while True:
        time.sleep(poll)
        if stopping:
            return _exit_status(_stop(child, grace))
        returncode = child.poll()
        if returncode is not None:
            return _exit_status(returncode)
        current = _mtime(trigger)
        if current != seen:
            seen = current
            print(f"dev-supervisor: {trigger} changed, restarting {command[0]}", flush=True)
            _stop(child, grace)
            child = subprocess.Popen(command)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return supervise(argv[0], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
