"""An in-memory Mattermost WebSocket server for the adapter's unit tests.

trio-websocket's own server side runs over ``trio.testing.memory_stream_pair()``; the client
reaches it through its injectable ``connect``.  Each connection attempt plays the next script
(``"refuse"``, ``"reject"``, ``"eof"`` or an async function of a :class:`ServerSocket`), or by
default says ``hello`` to a new connection and stays silent on a resume.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
import trio.testing
import trio_websocket
from wsproto.utilities import ProtocolError

BOT = "b" * 26
DM = "d" * 26

Script = Callable[["ServerSocket"], Awaitable[None]] | str
_GONE = (
    trio_websocket.ConnectionClosed,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ProtocolError,
)


class ServerSocket:
    """The server end of one accepted WebSocket."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, stream: trio.abc.Stream) -> None:
        self.ws = ws
        self.stream = stream
        assert ws.path is not None
        self.path = urlsplit(ws.path).path
        self.query = {k: v[0] for k, v in parse_qs(urlsplit(ws.path).query).items()}
        self.seq = 0
        self.actions: list[dict[str, Any]] = []
        #: How many pings to answer (None: all).
        self.pings_to_answer: int | None = None
        self.gone = trio.Event()

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send_message(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def event(self, name: str, data: dict[str, Any], *, seq: int | None = None) -> None:
        seq = self.seq if seq is None else seq
        self.seq = seq + 1
        broadcast = {"omit_users": None, "user_id": "", "channel_id": DM, "team_id": ""}
        await self.send({"event": name, "data": data, "broadcast": broadcast, "seq": seq})

    async def hello(self, connection_id: str) -> None:
        await self.event("hello", {"server_version": "10.5.0", "connection_id": connection_id})

    async def posted(self, post: dict[str, Any], *, seq: int | None = None) -> None:
        data = {"post": json.dumps(post), "channel_type": "D", "sender_name": "@alice"}
        await self.event("posted", data | {"channel_name": f"{BOT}__{DM}"}, seq=seq)

    async def drop(self) -> None:
        """Cut the connection without a close frame (1006 for the client)."""
        await self.stream.aclose()

    async def read(self) -> None:
        try:
            while True:
                frame = json.loads(await self.ws.get_message())
                self.actions.append(frame)
                if frame.get("action") == "ping" and self.pings_to_answer != 0:
                    if self.pings_to_answer is not None:
                        self.pings_to_answer -= 1
                    await self.send({"status": "OK", "seq_reply": frame["seq"], "data": {}})
        finally:
            self.gone.set()


class FakeServer:
    """Accepts the client's connections over memory streams and plays a script on each."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.scripts: list[Script] = []
        self.sockets: list[ServerSocket] = []
        self.attempts: list[float] = []
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def connect(self, host: str, port: int) -> trio.abc.Stream:
        self.attempts.append(trio.current_time())
        script = self.scripts.pop(0) if self.scripts else default_script
        if script == "refuse":
            raise OSError(errno.ECONNREFUSED, "Connection refused")
        client, server = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, server, script)
        return client

    async def _serve(self, stream: trio.abc.Stream, script: Script) -> None:
        try:
            async with trio.open_nursery() as nursery:
                request = await trio_websocket.wrap_server_stream(nursery, stream)
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                self.requests.append((request.path, headers))
                if script == "reject":
                    await request.reject(503, body=b"maintenance")
                elif script == "eof":
                    await stream.aclose()  # the upgrade never gets an answer
                else:
                    assert callable(script)
                    socket = ServerSocket(await request.accept(), stream)
                    self.sockets.append(socket)
                    nursery.start_soon(socket.read)
                    await script(socket)
                    await socket.gone.wait()
                nursery.cancel_scope.cancel()
        except* _GONE:
            pass
        finally:
            await trio.aclose_forcefully(stream)


async def default_script(socket: ServerSocket) -> None:
    if "connection_id" not in socket.query:
        await socket.hello(f"conn{len(socket.query)}")
