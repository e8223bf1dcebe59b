"""One WebSocket over ASGI: authentication, client actions and the ordered writer (§3).

A ``WebSocketSession`` lives as long as its socket.  Authenticated on the upgrade it attaches to
the hub at once (and may resume); otherwise it waits ``auth_timeout`` for an
``authentication_challenge``.  A single writer task sends what the hub queues, in order,
applying ``ws:event:<name>`` faults just before each event is numbered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from mmthreads.harness.faults import CloseSocket, Delay, Drop
from mmthreads.harness.mattermost.emulator import ConnectRecord, SocketControl
from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.hub import QueuedEvent
from mmthreads.harness.mattermost.models import WsResponse, encode
from mmthreads.harness.mattermost.version import VERSION

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from mmthreads.harness.mattermost.emulator import MattermostEmulator
    from mmthreads.harness.mattermost.hub import WebConn

    Message = MutableMapping[str, Any]

__all__ = ["ClientRequest", "WebSocketSession"]

logger = logging.getLogger(__name__)


class ClientRequest(msgspec.Struct, kw_only=True):
    """A client action frame: ``{"seq", "action", "data"}``."""

    seq: int = 0
    action: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_REQUEST_DECODER = msgspec.json.Decoder(ClientRequest)


class WebSocketSession(SocketControl):
    """The server side of one accepted (or about to be accepted) WebSocket."""

    def __init__(
        self,
        emulator: MattermostEmulator,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
        *,
        client: tuple[str, int] | None,
    ) -> None:
        self.emulator = emulator
        self._receive = receive
        self._send = send
        self.client = client
        self.conn: WebConn | None = None
        self._close_code: int | None = None
        self._wake = trio.Event()
        self._done = False

    def __repr__(self) -> str:
        return f"<WebSocketSession client={self.client} conn={self.conn!r}>"

    # -- SocketControl --------------------------------------------------------------------

    def close(self, code: int = 1006) -> None:
        """Ask the writer to close the socket with ``code`` (1006: no close frame)."""
        if self._close_code is None:
            self._close_code = code
        self._detach()
        self._wake.set()

    async def close_now(self, code: int) -> None:
        """Close an accepted socket before the session runs, and wait until it is gone."""
        if code == 1006 and self._abort():
            # Nothing may be written after the cut: wait for the server to see the end.
            while (await self._receive())["type"] != "websocket.disconnect":
                pass
        else:
            await self._send({"type": "websocket.close", "code": code if code != 1006 else 1011})

    # -- lifecycle ------------------------------------------------------------------------

    async def run(
        self, user_id: str | None, *, connection_id: str = "", sequence_number: str | None = None
    ) -> None:
        """Accept the socket and serve it until it closes."""
        emulator = self.emulator
        if user_id is not None:
            attached = emulator.hub.connect(
                user_id,
                resumable=True,
                now=emulator.state.now(),
                connection_id=connection_id,
                sequence_number=sequence_number,
            )
            await self._send({"type": "websocket.accept"})
            if attached is None:
                # The server upgrades, then closes the socket without a word.
                await self.close_now(1006)
                return
            self._attach(*attached)
        else:
            await self._send({"type": "websocket.accept"})
        emulator.sockets.add(self)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, nursery.cancel_scope)
                if self.conn is None:
                    nursery.start_soon(self._auth_deadline)
                await self._reader()
                nursery.cancel_scope.cancel()
        finally:
            self._done = True
            emulator.sockets.discard(self)
            self._detach()
            emulator.notify()

    def _attach(self, conn: WebConn, how: Any) -> None:
        emulator = self.emulator
        self.conn = conn
        conn.owner = self
        conn.active = True
        conn.wakeup = self._wake.set
        emulator.connects.append(
            ConnectRecord(conn.user_id, conn.connection_id, how, trio.current_time())
        )
        logger.debug("%r attached (%s)", conn, how.value)
        emulator.notify()
        self._wake.set()

    def _detach(self) -> None:
        if self.conn is not None:
            self.emulator.hub.detach(self.conn, now=self.emulator.state.now(), owner=self)

    def _abort(self) -> bool:
        abort = self.emulator.abort_transport
        if self.client is None or abort is None or not abort(self.client):
            logger.warning("cannot drop %r without a close frame: closing with 1011", self)
            return False
        return True

    async def _auth_deadline(self) -> None:
        await trio.sleep(self.emulator.auth_timeout)
        if self.conn is None:
            logger.debug("%r did not authenticate in time", self)
            self.close(1006)

    # -- reading --------------------------------------------------------------------------

    async def _reader(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] != "websocket.receive":
                continue
            raw = message.get("text")
            if raw is None:
                # Binary frames are msgpack on the real server; the emulator only speaks JSON.
                self.close(1006)
                continue
            try:
                request = _REQUEST_DECODER.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.close(1006)
                continue
            await self._handle(request)

    async def _handle(self, request: ClientRequest) -> None:
        emulator = self.emulator
        if not request.action:
            await self._reply_error(
                request.seq, AppError("api.web_socket_router.no_action.app_error", 400)
            )
            return
        if request.seq <= 0:
            await self._reply_error(
                request.seq, AppError("api.web_socket_router.bad_seq.app_error", 400)
            )
            return
        if request.action == "authentication_challenge":
            if self.conn is not None:
                return  # already authenticated: silently ignored
            token = request.data.get("token")
            user_id = emulator.state.tokens.get(token) if isinstance(token, str) else None
            if user_id is None:
                self.close(1006)
                return
            attached = emulator.hub.connect(user_id, resumable=False, now=emulator.state.now())
            assert attached is not None  # a fresh connection is always possible
            self._attach(*attached)
            self._reply(request.seq)
            return
        if self.conn is None:
            error = AppError("api.web_socket_router.not_authenticated.app_error", 401)
            await self._reply_error(request.seq, error)
            return
        if request.action == "ping":
            data = {
                "node_id": "",
                "server_time": emulator.state.now(),
                "text": "pong",
                "version": VERSION,
            }
            self._reply(request.seq, data)
        elif request.action == "user_typing":
            channel_id = str(request.data.get("channel_id", ""))
            parent_id = str(request.data.get("parent_id", ""))
            try:
                emulator.perform(
                    emulator.state.publish_typing, self.conn.user_id, channel_id, parent_id
                )
            except AppError as error:
                await self._reply_error(request.seq, error)
                return
            self._reply(request.seq)
        elif request.action in ("get_statuses", "get_statuses_by_ids"):
            self._reply(request.seq, {u: "online" for u in emulator.state.users})
        elif request.action in ("posted_ack", "presence"):
            self._reply(request.seq)
        else:
            await self._reply_error(
                request.seq, AppError("api.web_socket_router.bad_action.app_error", 501)
            )

    def _reply(self, seq: int, data: dict[str, Any] | None = None) -> None:
        assert self.conn is not None
        response = WsResponse(status="OK", seq_reply=seq)
        if data is not None:
            response.data = data
        self.emulator.hub.queue_reply(self.conn, response)

    async def _reply_error(self, seq: int, error: AppError) -> None:
        body = msgspec.to_builtins(error.body(""))
        response = WsResponse(status="FAIL", seq_reply=seq, error=body)
        if self.conn is not None:
            self.emulator.hub.queue_reply(self.conn, response)
        else:
            await self._send({"type": "websocket.send", "text": encode(response).decode()})

    # -- writing --------------------------------------------------------------------------

    async def _writer(self, scope: trio.CancelScope) -> None:
        emulator = self.emulator
        hub = emulator.hub
        while True:
            self._wake = trio.Event()
            if self.conn is not None:
                self.conn.wakeup = self._wake.set
            code = self._close_code
            if code is None and self.conn is not None and self.conn.dropped:
                code = 1006
            if code is not None:
                if code == 1006 and self._abort():
                    # The reader ends when the server notices; writing anything more (even
                    # the close frame the server adds when the app returns) would spoil the
                    # abnormal closure.
                    return
                await self._send(
                    {"type": "websocket.close", "code": code if code != 1006 else 1011}
                )
                scope.cancel()
                return
            conn = self.conn
            if conn is None or not conn.has_output():
                await self._wake.wait()
                continue
            item = hub.peek(conn)
            if isinstance(item, QueuedEvent):
                outcome = emulator.plan.decide(f"ws:event:{item.event}", now=trio.current_time())
                if isinstance(outcome, Drop):
                    hub.discard_next(conn)
                    continue
                if isinstance(outcome, CloseSocket):
                    # The event stays queued, unnumbered: a resume delivers it.
                    self.close(outcome.code)
                    continue
                if isinstance(outcome, Delay):
                    await trio.sleep(outcome.seconds)
                    if self._close_code is not None or conn.dropped:
                        continue
            frame = hub.next_frame(conn)
            if frame is not None:
                await self._send({"type": "websocket.send", "text": frame.decode()})
