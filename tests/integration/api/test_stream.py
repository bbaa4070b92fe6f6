"""The WebSocket stream: token rules and live portfolio/order/rejection pushes from Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from alphaspt.api import make_redis_client
from alphaspt.api.auth import WS_APP_PROTOCOL, encode_token_subprotocol
from alphaspt.api.metrics import ApiMetrics
from alphaspt.api.server import BackgroundServer
from alphaspt.api.stream import StreamSettings, UpdateBroadcaster
from alphaspt.core.cache import PortfolioCacheWriter, StrategyView

pytestmark = pytest.mark.integration


def ws_url(server: BackgroundServer, query: str = "") -> str:
    return f"ws://{server.host}:{server.port}/api/v1/stream{query}"


def next_of(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of type ``kind`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {kind!r} message within {timeout}s")
        msg: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        if msg["type"] == kind:
            return msg


def wait_subscribed(server: BackgroundServer, timeout: float = 5.0) -> None:
    broadcaster = server.app.state.broadcaster
    deadline = time.monotonic() + timeout
    while not broadcaster.subscribed.is_set():
        assert time.monotonic() < deadline, "broadcaster never subscribed"
        time.sleep(0.01)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"additional_headers": {"Authorization": "Bearer wrong"}},
        {"subprotocols": [WS_APP_PROTOCOL, encode_token_subprotocol("wrong")]},
        {"subprotocols": [WS_APP_PROTOCOL, "base64url.bearer.authorization.alphaspt.io.%%%"]},
    ],
)
def test_stream_refuses_missing_or_wrong_token_with_401(
    api_server: BackgroundServer, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(api_server), open_timeout=5, **kwargs)
    assert info.value.response.status_code == 401
    assert b"missing or invalid bearer token" in info.value.response.body


def test_stream_refuses_token_in_query(api_server: BackgroundServer, api_token: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(api_server, f"?token={api_token}"), open_timeout=5)
    assert info.value.response.status_code == 401


def test_stream_pushes_portfolio_orders_and_rejections(
    api_server: BackgroundServer, api_token: str, writer: PortfolioCacheWriter,
    view_factory: Callable[..., StrategyView],
) -> None:
    with connect(ws_url(api_server), open_timeout=5,
                 additional_headers={"Authorization": f"Bearer {api_token}"}) as ws:
        assert next_of(ws, "hello")["protocol"] == WS_APP_PROTOCOL
        wait_subscribed(api_server)
        writer.write_snapshot([view_factory("alpha", realised=120.0, charges=2.5, fills=3)])
        msg = next_of(ws, "portfolio")
        (alpha,) = msg["strategies"]
        assert (alpha["name"], alpha["net_pnl"], alpha["fills"]) == ("alpha", 117.5, 3)
        assert msg["totals"]["net_pnl"] == 117.5
        writer.record("order", "alpha", {"client_order_id": "co-1", "symbol": "INFY",
                                         "quantity": 5})
        order = next_of(ws, "order")
        assert (order["strategy"], order["client_order_id"]) == ("alpha", "co-1")
        writer.record("rejection", "alpha", {"reason": "KILL_SWITCH", "message": "engaged"})
        rejection = next_of(ws, "rejection")
        assert rejection["reason"] == "KILL_SWITCH"


def test_stream_subprotocol_auth_selects_app_protocol(
    api_server: BackgroundServer, api_token: str, writer: PortfolioCacheWriter,
    view_factory: Callable[..., StrategyView],
) -> None:
    protocols = [Subprotocol(WS_APP_PROTOCOL), Subprotocol(encode_token_subprotocol(api_token))]
    with connect(ws_url(api_server), open_timeout=5, subprotocols=protocols) as ws:
        assert ws.subprotocol == WS_APP_PROTOCOL
        assert next_of(ws, "hello")
        wait_subscribed(api_server)
        writer.write_snapshot([view_factory("beta", unrealised=-50.0)])
        assert next_of(ws, "portfolio")["strategies"][0]["net_pnl"] == -50.0


def test_many_clients_each_get_every_update(
    api_server: BackgroundServer, api_token: str, writer: PortfolioCacheWriter,
    view_factory: Callable[..., StrategyView],
) -> None:
    headers = {"Authorization": f"Bearer {api_token}"}
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(connect(ws_url(api_server), open_timeout=5,
                                        additional_headers=headers))
            for _ in range(5)
        ]
        for ws in clients:
            next_of(ws, "hello")
        wait_subscribed(api_server)
        for i in range(20):
            writer.record("order", "alpha", {"seq": i})
        for ws in clients:
            assert [next_of(ws, "order")["seq"] for _ in range(20)] == list(range(20))


async def test_slow_client_is_dropped_not_silently_skipped(api_redis_url: str) -> None:
    metrics = ApiMetrics()
    client = make_redis_client(api_redis_url)
    broadcaster = UpdateBroadcaster(client, StreamSettings(client_queue=2, max_clients=2),
                                    metrics)
    try:
        slow, fast = broadcaster.add(), broadcaster.add()
        assert slow is not None
        assert fast is not None
        assert broadcaster.add() is None  # the client limit
        await asyncio.wait_for(broadcaster.subscribed.wait(), 5)
        for sub in (slow, fast):  # subscribing queued a resync for each
            assert json.loads(await asyncio.wait_for(sub.queue.get(), 5)) == {"type": "resync"}
        for i in range(3):
            broadcaster._fanout(f"m{i}")
            if i < 2:
                assert await asyncio.wait_for(fast.queue.get(), 5) == f"m{i}"
        assert slow.overflowed.is_set()
        assert broadcaster.clients == 1
        assert not fast.overflowed.is_set()
        assert metrics.stream_dropped_clients._value.get() == 1
    finally:
        await broadcaster.stop()
        await client.aclose()
