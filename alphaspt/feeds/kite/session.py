"""The feed's Kite credentials: the api key and the day's access token, or one line
saying what to do. The token comes from ``kite.access_token`` (the environment, a
Kubernetes Secret's key) or the daily login's token file (JSON ``access_token`` and
``expires_at``); an expired one is refused before Kite refuses it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alphaspt.core.config import KiteConfig
from alphaspt.exceptions import InvalidConfiguration

_LOGIN = "log in again (alphaspt kite login)"


def feed_credentials(config: KiteConfig, now: datetime | None = None) -> tuple[str, str]:
    """``(api_key, access_token)``; :class:`InvalidConfiguration` when either is missing."""
    if not config.api_key:
        raise InvalidConfiguration("ALPHASPT_KITE__API_KEY is not set")
    if config.access_token is not None:
        return config.api_key, config.access_token.get_secret_value()
    path = config.token_file
    if path is None:
        raise InvalidConfiguration(
            "no Kite access token: set ALPHASPT_KITE__ACCESS_TOKEN or "
            f"ALPHASPT_KITE__TOKEN_FILE; {_LOGIN}")
    try:
        data = json.loads(path.read_text())
        token = str(data["access_token"])
        expires = data.get("expires_at")
    except OSError as exc:
        raise InvalidConfiguration(
            f"cannot read the Kite token file {path} ({exc.strerror}); {_LOGIN}") from None
    except (ValueError, KeyError, TypeError):
        raise InvalidConfiguration(
            f"the Kite token file {path} holds no access_token; {_LOGIN}") from None
    if expires:
        at = datetime.fromisoformat(expires)
        if (now or datetime.now(UTC)) >= at:
            raise InvalidConfiguration(
                f"the Kite access token expired at {at.isoformat()}; {_LOGIN}")
    if not token:
        raise InvalidConfiguration(f"the Kite token file {path} is empty; {_LOGIN}")
    return config.api_key, token
