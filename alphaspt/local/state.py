"""What a running ``alphaspt up`` tells the other commands, through files in its state dir.

- ``up.json`` (mode 0600, written once ready, removed at exit): who runs (pid, start time,
  manifests directory, namespace) and where its servers listen (Kafka bootstrap, Redis and
  PostgreSQL URLs with any password removed, the API's URL). No credential is ever in it:
  a client that needs one (an external server with a password) takes it from its own
  settings, which win over the file.
- ``status.json`` (mode 0600, rewritten atomically about every second): the strategies and
  risk profiles as applied from the manifests, the last refused edit, and every worker's
  health (pid, alive, restarts, lag, its own reason for making no progress).
- ``up.lock``: held by the running ``up`` (``flock``), holds its pid.

``alphaspt status``, ``pause``, ``resume`` and ``kill`` find the running ``up`` with
:func:`find_up`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import redis

from alphaspt.core.cache import parse_strategy, portfolio_key
from alphaspt.core.views import StrategyView, TotalsView, totals_of
from alphaspt.exceptions import InvalidConfiguration

UP_FILE: Final = "up.json"
STATUS_FILE: Final = "status.json"
LOCK_FILE: Final = "up.lock"


def _userinfo(url: str) -> tuple[str, str, bool, str] | None:
    """(scheme, user, has a password, host part) of a URL with credentials, else None."""
    if "@" not in url or "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return scheme, creds.split(":", 1)[0], ":" in creds, host


def redact(url: str) -> str:
    """A URL fit for a terminal: any password replaced by ``***``."""
    parts = _userinfo(url)
    if parts is None:
        return url
    scheme, user, password, host = parts
    return f"{scheme}://{user}{':***' if password else ''}@{host}"


def without_password(url: str) -> str:
    """``scheme://user:pass@host`` → ``scheme://user@host`` (a URL fit for a file)."""
    parts = _userinfo(url)
    if parts is None:
        return url
    scheme, user, _password, host = parts
    return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"


def write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename), readable by the owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


@dataclass(frozen=True)
class RunningUp:
    """A live ``alphaspt up`` as found in its state dir."""

    state_dir: Path
    info: Mapping[str, Any]

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    def status(self) -> dict[str, Any]:
        """The latest ``status.json`` ({} before the first one)."""
        try:
            data = json.loads((self.state_dir / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_up(state_dir: Path) -> RunningUp:
    """The ``up`` running on ``state_dir``; :class:`InvalidConfiguration` (one line saying
    what to do) when there is none."""
    state_dir = state_dir.resolve()
    try:
        info = json.loads((state_dir / UP_FILE).read_text())
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict) or not _alive(int(info.get("pid", 0))):
        raise InvalidConfiguration(
            f"no alphaspt up is running on {state_dir} (start one with `alphaspt up`, or "
            "set ALPHASPT_LOCAL__STATE_DIR to its state directory; --kube for a cluster)")
    return RunningUp(state_dir, info)


def read_portfolio(client: redis.Redis) -> tuple[list[StrategyView], TotalsView]:
    """Every strategy's portfolio from the Redis read model, and their totals (what the
    API and dashboard show). Raises ``redis.RedisError`` when Redis does not answer."""
    views = []
    for name in sorted(str(n) for n in client.smembers("strategies")):
        raw = client.hgetall(portfolio_key(name))
        if raw:
            views.append(parse_strategy(name, {str(k): str(v) for k, v in raw.items()}))
    raw_total = client.hgetall("portfolio:total")
    totals = (msgspec.convert({str(k): str(v) for k, v in raw_total.items()}, TotalsView,
                              strict=False) if raw_total else totals_of(views))
    return views, totals
