"""Helpers for the loopback tests: WebSocket clients against a running emulator."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import ConnectionRejected, wrap_client_stream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from trio_websocket import WebSocketConnection

    from mmthreads.harness.mattermost import Account, MattermostServer

#: Every loopback test runs under this many seconds.
DEADLINE = 15


@asynccontextmanager
async def open_socket(
    mm: MattermostServer, account: Account | None = None, *, query: str = ""
) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket to the emulator, authenticated on the upgrade when ``account`` is given.

    The test owns the TCP stream: trio-websocket leaves its socket open after an abnormal
    close (1006), which the emulator's faults produce on purpose.
    """
    headers = [(b"Authorization", f"Bearer {account.token}".encode())] if account else []
    resource = "/api/v4/websocket" + (f"?{query}" if query else "")
    stream = await trio.open_tcp_stream("127.0.0.1", mm.port)
    try:
        async with stream, trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, "127.0.0.1", resource, extra_headers=headers
            )
            try:
                yield ws
            finally:
                await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A refused upgrade surfaces from trio-websocket's reader task; give tests the
        # ConnectionRejected itself.
        rejected, rest = group.split(ConnectionRejected)
        if rejected is not None and rest is None:
            leaf: BaseException = rejected
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise leaf from None
        raise


async def next_frame(ws: WebSocketConnection) -> dict[str, Any]:
    """The next frame, decoded."""
    message = await ws.get_message()
    assert isinstance(message, str)
    decoded: dict[str, Any] = json.loads(message)
    return decoded


async def frames_until(ws: WebSocketConnection, event: str) -> list[dict[str, Any]]:
    """Read frames up to and including the first ``event``."""
    seen = []
    while True:
        frame = await next_frame(ws)
        seen.append(frame)
        if frame.get("event") == event:
            return seen


def close_code(error: BaseException) -> int:
    """The close code of a ``ConnectionClosed``."""
    reason = getattr(error, "reason", None)
    assert reason is not None
    code: int = reason.code
    return code
