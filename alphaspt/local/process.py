"""Child processes that are always stopped: free ports, readiness waits, TERM then KILL."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from alphaspt.exceptions import ServerStartError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch_status(host: str, port: int, timeout: float = 0.3) -> dict[str, Any] | None:
    """A worker's ``/status`` (``alphaspt.core.health``), or ``None`` if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=timeout) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def as_user(user: str) -> dict[str, Any]:
    """subprocess arguments that drop to ``user`` entirely: uid, gid and no extra groups.

    Setting only the uid would keep root's group, whose permission bits (not "other")
    then apply, e.g. on a ``drwx-----x /root``.
    """
    return {"user": user, "group": user, "extra_groups": []}


def die_with_parent() -> None:
    """In the child, before exec: Linux SIGKILLs it when the parent dies, however the
    parent died (SIGKILL, OOM killer, a closed terminal), so nothing is left trading on
    its own. SIGKILL, not SIGTERM: a worker's graceful stop waits for a broker that may be
    going down at the same moment, and every stage is safe to kill at any point.

    Linux ties this to the *thread* that started the child: start children from a thread
    that lives as long as they should (``up`` and the test fixtures use the main thread)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def open_private_log(path: Path) -> IO[bytes]:
    """Open a log file for appending, readable by its owner only (mode 0600, also when it
    existed with looser permissions): logs name servers, strategies and errors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


class ManagedProcess:
    """A server process with its own log file and process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = open_private_log(self.log_path)
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs.update(as_user(self.user))
        if sys.platform == "linux":
            kwargs["preexec_fn"] = die_with_parent
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                **kwargs,
            )
        except OSError as exc:
            raise ServerStartError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with {self.proc.returncode} during start-up; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            if check():
                return
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(
            f"{self.name} not ready after {timeout:.0f}s; log {self.log_path}:\n"
            f"{tail(self.log_path)}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc is not None:
            # The group may hold children that outlived the leader (postgres backends).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
