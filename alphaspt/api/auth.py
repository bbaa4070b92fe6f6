"""Bearer-token access control.

HTTP: ``Authorization: Bearer <token>`` on every endpoint except ``/healthz``, ``/readyz``
and the dashboard's static files (the page holds no data; it asks for the token).

WebSocket (``/api/v1/stream``), one of:

- ``Authorization: Bearer <token>`` (command-line clients);
- the subprotocols ``alphaspt.v1`` and ``base64url.bearer.authorization.alphaspt.io.<b64>``
  where ``<b64>`` is the token encoded as unpadded base64url (browsers cannot set headers
  on a WebSocket; this is the convention the Kubernetes API server uses). The server
  selects ``alphaspt.v1`` and never echoes the token.

Tokens in the query string are refused on purpose: URLs end up in access logs, proxy logs
and browser history. The dashboard takes the token from the URL *fragment*
(``/#token=...``), which browsers never send to the server, then removes it from the
address bar.

Tokens are compared in constant time (on their SHA-256 digests, so the length leaks too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated, Final

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from alphaspt.exceptions import InvalidConfiguration

WS_APP_PROTOCOL: Final = "alphaspt.v1"
WS_TOKEN_PROTOCOL_PREFIX: Final = "base64url.bearer.authorization.alphaspt.io."  # noqa: S105
_UNAUTHORIZED_HEADERS: Final = {"WWW-Authenticate": 'Bearer realm="alphaspt"'}
# Declares the scheme in OpenAPI; the check itself is ours (401, constant time).
_scheme = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                     description="The API token (ALPHASPT_API__TOKEN).")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenAuth:
    """Checks bearer tokens against the configured one. Callable as a FastAPI dependency."""

    def __init__(self, token: SecretStr | None) -> None:
        if token is None or not token.get_secret_value():
            raise InvalidConfiguration(
                "the API needs a bearer token: set ALPHASPT_API__TOKEN "
                "(or api.token in the settings file; `alphaspt up` generates one)"
            )
        self._expected = _digest(token.get_secret_value())

    def valid(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(_digest(presented), self._expected)

    async def __call__(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)],
    ) -> None:
        if credentials is None or not self.valid(credentials.credentials):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid bearer token",
                headers=_UNAUTHORIZED_HEADERS,
            )

    @staticmethod
    def unauthorized_headers() -> dict[str, str]:
        return dict(_UNAUTHORIZED_HEADERS)


def bearer_from_headers(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def bearer_from_subprotocols(protocols: list[str]) -> str | None:
    for proto in protocols:
        if proto.startswith(WS_TOKEN_PROTOCOL_PREFIX):
            encoded = proto[len(WS_TOKEN_PROTOCOL_PREFIX):]
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return raw.decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None
    return None


def encode_token_subprotocol(token: str) -> str:
    """The subprotocol a WebSocket client offers to authenticate (besides ``alphaspt.v1``)."""
    encoded = base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")
    return WS_TOKEN_PROTOCOL_PREFIX + encoded
