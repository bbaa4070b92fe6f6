"""Where the day's Kite access token lives, and when it stops working.

A token "expire[s] at 6 AM on the next day" (Kite docs, user page): :func:`expires_at`
is the first 06:00 IST after the login. Locally the token is a JSON file of mode 0600
(``{"access_token", "login_time", "expires_at"}``) written by ``alphaspt kite login`` and
re-read when it changes, so a new login takes effect without a restart; in Kubernetes it
is a key of the strategy's Secret, handed to the worker as ``ALPHASPT_KITE__ACCESS_TOKEN``.
Nothing here logs or prints a token.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Final, Protocol

IST: Final = timezone(timedelta(hours=5, minutes=30))
EXPIRY_HOUR_IST: Final = 6
KITE_TOKEN_FILE: Final = "kite-token.json"  # noqa: S105 - a file name
"""The token file's name in ``alphaspt up``'s state directory (unless ``kite.token_file``)."""


def expires_at(login: datetime) -> datetime:
    """The first 06:00 IST strictly after ``login`` (naive datetimes are IST, as Kite's)."""
    local = login.replace(tzinfo=IST) if login.tzinfo is None else login.astimezone(IST)
    cut = local.replace(hour=EXPIRY_HOUR_IST, minute=0, second=0, microsecond=0)
    return cut if cut > local else cut + timedelta(days=1)


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires: datetime | None = None
    """``None``: unknown (a token from a Secret without its login time)."""

    def __repr__(self) -> str:  # never show the token
        return f"AccessToken(expires={self.expires!r})"

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


class TokenStore(Protocol):
    def read(self) -> AccessToken | None:
        """The current token, ``None`` if there is none (not logged in)."""
        ...


class StaticToken:
    """A token handed over by the environment (a Kubernetes Secret's key)."""

    def __init__(self, token: str, expires: datetime | None = None) -> None:
        self._token = AccessToken(token, expires)

    def read(self) -> AccessToken | None:
        return self._token


class FileTokenStore:
    """The local token file (mode 0600), re-read whenever its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._cached: AccessToken | None = None

    def read(self) -> AccessToken | None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime != self._mtime:
            data = json.loads(self.path.read_text())
            expires = data.get("expires_at")
            self._cached = AccessToken(
                str(data["access_token"]),
                datetime.fromisoformat(expires) if expires else None)
            self._mtime = mtime
        return self._cached

    def write(self, token: str, login_time: datetime) -> AccessToken:
        """Store a new token atomically with mode 0600; returns it with its expiry."""
        record = AccessToken(token, expires_at(login_time))
        assert record.expires is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".kite-token-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"access_token": token,
                           "login_time": login_time.isoformat(),
                           "expires_at": record.expires.isoformat()}, fh)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return record
