"""``alphaspt kite-sim`` and ``alphaspt kite login`` as a user runs them (real processes)."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import secrets
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import requests
from kiteconnect import KiteConnect

from alphaspt.local.process import free_port

REPO = Path(__file__).resolve().parents[3]
_SYS_TGKILL = {"x86_64": 234, "aarch64": 131}[platform.machine()]


def test_daily_login_through_the_redirect_listener(tmp_path: Path) -> None:
    key, secret = "sim" + secrets.token_hex(4), secrets.token_hex(16)
    redirect = free_port()
    base = {**{k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")},
            "PYTHONPATH": str(REPO), "ALPHASPT_SETTINGS_FILE": "/nonexistent.toml",
            "ALPHASPT_KITE__API_KEY": key, "ALPHASPT_KITE__API_SECRET": secret,
            "ALPHASPT_LOCAL__STATE_DIR": str(tmp_path / "state")}
    sim = subprocess.Popen([sys.executable, "-m", "alphaspt", "kite-sim", "--redirect-url",
                            f"http://127.0.0.1:{redirect}/"], env=base, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sim.stdout is not None
        sim_out = [sim.stdout.readline() for _ in range(3)]
        api_root = sim_out[0].split()[2]
        assert sim_out[1].split()[2].startswith("ws://")
        token_file = tmp_path / "token.json"
        env = {**base, "ALPHASPT_KITE__API_ROOT": api_root,
               "ALPHASPT_KITE__LOGIN_URL": f"{api_root}/connect/login",
               "ALPHASPT_KITE__TOKEN_FILE": str(token_file)}
        login = subprocess.Popen([sys.executable, "-m", "alphaspt", "kite", "login",
                                  "--listen", str(redirect)], env=env, cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert login.stdout is not None
        url = login.stdout.readline().split()[-1]
        assert url.startswith(f"{api_root}/connect/login?") and f"api_key={key}" in url
        deadline = time.monotonic() + 30
        while True:  # the browser: Kite redirects it to the listener
            try:
                answer = requests.get(url, timeout=10)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert answer.status_code == 200 and "Logged in" in answer.text
        out, _ = login.communicate(timeout=60)
        assert login.returncode == 0, out
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        access = json.loads(token_file.read_text())["access_token"]
        kite = KiteConnect(key, root=api_root)
        kite.set_access_token(access)
        assert kite.orders() == []
        printed = url + out + "".join(sim_out)
        assert secret not in printed and access not in printed
        assert "request_token=" not in printed
    finally:
        sim.terminate()
        sim.wait(30)


def test_kite_sim_stops_on_a_sigterm_that_a_server_thread_receives(tmp_path: Path) -> None:
    # A process-directed signal goes to any thread that does not block it; one taken by a
    # server thread must still stop the simulator (it once waited forever on an Event).
    # tgkill aims SIGTERM at a thread other than the main one, as the kernel may.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALPHASPT_")},
           "PYTHONPATH": str(REPO), "ALPHASPT_SETTINGS_FILE": "/nonexistent.toml",
           "ALPHASPT_LOCAL__STATE_DIR": str(tmp_path / "state")}
    sim = subprocess.Popen([sys.executable, "-m", "alphaspt", "kite-sim"], env=env, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sim.stdout is not None
        while "login URL" not in sim.stdout.readline():  # serving
            assert sim.poll() is None
        threads = [int(t) for t in os.listdir(f"/proc/{sim.pid}/task") if int(t) != sim.pid]
        assert threads, "the simulator serves from a thread of its own"
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(_SYS_TGKILL, sim.pid, threads[0], signal.SIGTERM) == 0
        assert sim.wait(10) == 0
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait(10)
