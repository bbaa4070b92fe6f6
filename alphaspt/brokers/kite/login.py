"""The daily Kite login (``alphaspt kite login``): URL, request token, session, storage.

Kite requires a person to log in once a day (kite-protocol.md §1): the browser goes to
:func:`login_url`, Kite redirects to the app's redirect URL with a one-time
``request_token`` (a few minutes' life), which :func:`exchange` turns into the day's access
token with ``checksum = sha256(api_key + request_token + api_secret)`` (kiteconnect's
``generate_session``). The token is stored in a 0600 file (``alphaspt up``) or in the
Kubernetes Secret a strategy's ``brokerSecretRef`` names. Nothing here prints or logs a
secret, a request token or an access token.
"""

from __future__ import annotations

import base64
import http.server
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from kiteconnect import KiteConnect

from alphaspt.brokers.kite.tokens import IST, expires_at
from alphaspt.core.config import KiteConfig
from alphaspt.exceptions import InvalidConfiguration

ACCESS_TOKEN_KEY = "ALPHASPT_KITE__ACCESS_TOKEN"  # noqa: S105 - a Secret's key name
EXPIRES_KEY = "ALPHASPT_KITE__ACCESS_TOKEN_EXPIRES"


@dataclass(frozen=True)
class Session:
    access_token: str
    login_time: datetime

    def __repr__(self) -> str:
        return f"Session(login_time={self.login_time!r})"

    @property
    def expires(self) -> datetime:
        return expires_at(self.login_time)


def login_url(config: KiteConfig) -> str:
    if not config.api_key:
        raise InvalidConfiguration("ALPHASPT_KITE__API_KEY is not set")
    return f"{config.login_url}?{urlencode({'api_key': config.api_key, 'v': 3})}"


def request_token_of(text: str) -> str:
    """The request token from what the user pasted: the token, or the redirect URL."""
    text = text.strip()
    if "request_token=" in text:
        values = parse_qs(urlparse(text).query).get("request_token") or \
            parse_qs(text.split("?", 1)[-1]).get("request_token")
        if not values:
            raise InvalidConfiguration("no request_token in the pasted URL")
        return values[0]
    if not text.isalnum():
        raise InvalidConfiguration("a request token is alphanumeric")
    return text


def exchange(config: KiteConfig, request_token: str) -> Session:
    """The day's access token for a request token (kiteconnect ``generate_session``)."""
    if not config.api_key or config.api_secret is None:
        raise InvalidConfiguration(
            "ALPHASPT_KITE__API_KEY and ALPHASPT_KITE__API_SECRET must be set to log in")
    kite = KiteConnect(config.api_key, root=config.api_root, timeout=config.timeout_s)
    data: dict[str, Any] = kite.generate_session(
        request_token, api_secret=config.api_secret.get_secret_value())
    login = data.get("login_time")
    if not isinstance(login, datetime):
        login = datetime.now(IST)
    return Session(str(data["access_token"]), login)


def wait_for_redirect(port: int, timeout_s: float = 300.0, host: str = "127.0.0.1") -> str:
    """Answer one redirect on ``http://host:port/`` and return its request token."""
    found: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            values = parse_qs(urlparse(self.path).query).get("request_token")
            if values:
                found.append(values[0])
            body = (b"Logged in; you can close this window." if values
                    else b"No request_token in this redirect.")
            self.send_response(200 if values else 400)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # the URL holds the token
            return

    server = http.server.HTTPServer((host, port), Handler)
    server.timeout = 1.0
    done = threading.Event()
    timer = threading.Timer(timeout_s, done.set)
    timer.start()
    try:
        while not found and not done.is_set():
            server.handle_request()
    finally:
        timer.cancel()
        server.server_close()
    if not found:
        raise InvalidConfiguration(f"no login redirect arrived within {timeout_s:g} s")
    return found[0]


def store_in_secret(session: Session, api: Any, namespace: str, name: str) -> None:
    """Write the token into the Secret ``name`` (created if missing) with ``api`` (a
    ``kubernetes.client.CoreV1Api``), keys ``ALPHASPT_KITE__ACCESS_TOKEN`` and
    ``ALPHASPT_KITE__ACCESS_TOKEN_EXPIRES`` (the worker's environment takes them as is)."""
    from kubernetes import client

    data = {ACCESS_TOKEN_KEY: session.access_token, EXPIRES_KEY: session.expires.isoformat()}
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    try:
        api.patch_namespaced_secret(name, namespace, {"data": encoded})
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        api.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name), type="Opaque", data=encoded))
