"""``/api/v1/stream``: WebSocket push of portfolio, order and rejection updates.

Authentication: see :mod:`alphaspt.api.auth` (``Authorization`` header, or the
``alphaspt.v1`` + ``base64url.bearer.authorization.alphaspt.io.<b64>`` subprotocols).
A refused handshake is answered with HTTP 401 (close code 1008 where the server cannot
send a denial response). The server only sends; text frames, one JSON object each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from alphaspt.api.auth import (
    WS_APP_PROTOCOL,
    TokenAuth,
    bearer_from_headers,
    bearer_from_subprotocols,
)
from alphaspt.api.routers import API_PREFIX
from alphaspt.api.stream import Subscriber, UpdateBroadcaster

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013


def stream_router(auth: TokenAuth, broadcaster: UpdateBroadcaster) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["stream"])

    async def deny(websocket: WebSocket, status: int, detail: str, code: int) -> None:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            headers = TokenAuth.unauthorized_headers() if status == 401 else {}
            await websocket.send_denial_response(
                JSONResponse({"detail": detail}, status_code=status, headers=headers)
            )
        else:
            await websocket.close(code=code, reason=detail)

    @router.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        offered = list(websocket.scope.get("subprotocols", []))
        token = bearer_from_headers(websocket.headers) or bearer_from_subprotocols(offered)
        if not auth.valid(token):
            await deny(websocket, 401, "missing or invalid bearer token",
                       CLOSE_POLICY_VIOLATION)
            return
        sub = broadcaster.add()
        if sub is None:
            await deny(websocket, 503, "too many stream clients", CLOSE_TRY_AGAIN_LATER)
            return
        try:
            await websocket.accept(
                subprotocol=WS_APP_PROTOCOL if WS_APP_PROTOCOL in offered else None
            )
            # A client loads its snapshot through REST after "hello", then applies updates.
            await websocket.send_text(json.dumps({"type": "hello", "protocol": WS_APP_PROTOCOL}))
            await _pump(websocket, sub)
        except WebSocketDisconnect:
            pass
        finally:
            broadcaster.remove(sub)

    return router


async def _pump(websocket: WebSocket, sub: Subscriber) -> None:
    """Send queued updates until the client leaves or falls too far behind."""

    async def drain_client() -> None:
        # The client sends nothing meaningful; reading notices its disconnect.
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def send_updates() -> None:
        while True:
            await websocket.send_text(await sub.queue.get())

    tasks = [
        asyncio.create_task(drain_client()),
        asyncio.create_task(send_updates()),
        asyncio.create_task(sub.overflowed.wait()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await t
    if tasks[2] in done:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="client too slow; resync")
    for t in done:
        if not t.cancelled() and (exc := t.exception()) is not None and not isinstance(
            exc, WebSocketDisconnect | RuntimeError
        ):
            raise exc
