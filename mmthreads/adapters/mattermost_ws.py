"""The Mattermost WebSocket connection: reconnects forever and reports core chat events.

Theory of operation
-------------------
:class:`ChatConnection` runs one socket (``mattermost_socket.open_chat_socket``) after
another.  The *connection* — the server's ``connection_id`` and the next expected ``seq`` —
outlives its sockets, which is what lets a reconnect resume (reference §3.8).

1. A socket is *ready* once the server says ``hello`` (a new connection: ``seq`` 0, a new
   ``connection_id``) or, on a resume (``?connection_id=…&sequence_number=…``), once it
   continues the old numbering: a replayed event with the next ``seq``, or the reply to our
   first ``ping`` when nothing was missed.  Connecting, upgrading and getting ready must fit
   in ``handshake_timeout``.  Ready reports :class:`~mmthreads.core.chat_events.ChatConnected`
   (``resumed`` says whether the server continued the connection; if not, missed posts must
   be fetched over REST).
2. Every event's ``seq`` must be the next one.  A gap means frames were lost: the socket is
   closed with 4001 and the connection resumed, so the server's dead queue replays them.  An
   unreadable frame may have used a number, so a gap no wider than the unreadable frames
   just skipped is not a loss (otherwise the replay would bring the same frame back forever).
3. The ``ping`` action goes out at once and every ``ping_interval``; its reply must come
   within ``pong_timeout`` or the socket is closed with 4000.  Time spent waiting for our
   own consumer to take an event does not count: then the reader, not the server, is late.
4. Losing a ready socket reports :class:`~mmthreads.core.chat_events.ChatDisconnected` once;
   failed attempts after it are only logged.  Attempt ``n`` waits ``policy.delay(n)``.

Events go to a memory channel with backpressure.  When its receiving side is closed, nobody
listens any more and :meth:`ChatConnection.run` returns.
"""

from __future__ import annotations

import logging
import math
import random as _random
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

import msgspec
import trio

from mmthreads.adapters.mattermost_socket import (
    default_connector,
    describe,
    open_chat_socket,
    websocket_target,
)
from mmthreads.core.backoff import RetryPolicy
from mmthreads.core.chat_events import ChatConnected, ChatDisconnected, from_envelope
from mmthreads.errors import ChatDisconnected as SocketLost
from mmthreads.errors import ChatError, ChatHandshakeError, ChatUnavailable
from mmthreads.wire.mattermost import HelloData, WsEnvelope

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.adapters.mattermost_socket import ChatSocket, StreamConnector
    from mmthreads.core.chat_events import ChatEvent

__all__ = ["DEFAULT_WS_POLICY", "ChatConnection", "run_chat_connection"]

logger = logging.getLogger(__name__)

#: Reconnect after 1 s, 2 s, 4 s … at most 30 s apart, forever.
DEFAULT_WS_POLICY: Final = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=30.0)

_ENVELOPE: Final = msgspec.json.Decoder(WsEnvelope)
_HELLO: Final = msgspec.json.Decoder(HelloData)


class ChatConnection:
    """A Mattermost WebSocket that reconnects forever and reports core chat events.

    Args:
        url: The server URL (``http(s)://…``, with or without ``/api/v4``) or the WebSocket
            URL (``ws(s)://…/api/v4/websocket``).
        token: The bot's access token.
        policy: Backoff between attempts; ``max_attempts`` > 0 makes ``run`` give up after
            that many failed attempts in a row.
        connect: Opens the byte stream, ``await connect(host, port)``; TCP (TLS for
            ``https``/``wss``) by default.
        ping_interval: Seconds between ``ping`` actions.
        pong_timeout: Seconds a ping may go unanswered before the socket counts as dead.
        handshake_timeout: Seconds from connecting until the socket is ready.
        close_timeout: Seconds to spend closing a socket politely.
        random: Source of [0, 1) numbers for the policy's jitter.

    Raises:
        ConfigError: ``url`` is not a server or WebSocket URL.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        policy: RetryPolicy = DEFAULT_WS_POLICY,
        connect: StreamConnector | None = None,
        ping_interval: float = 30.0,
        pong_timeout: float = 10.0,
        handshake_timeout: float = 10.0,
        close_timeout: float = 2.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if min(ping_interval, pong_timeout, handshake_timeout) <= 0 or close_timeout < 0:
            raise ValueError("intervals and timeouts must be positive")
        self._target = websocket_target(url)
        self._token = token
        self._policy = policy
        self._connect = connect or default_connector(self._target)
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        self._random = random
        self._send: trio.MemorySendChannel[ChatEvent] | None = None
        self._task_status: trio.TaskStatus[None] | None = None
        self._run_scope = trio.CancelScope()
        self._handshake = trio.CancelScope()
        # The logical connection, which outlives sockets.
        self._connection_id = ""
        self._next_seq = 0
        self._connected = False
        self._ever_ready = False
        # The current socket.
        self._ready = False
        self._resuming = False
        self._unreadable = 0
        self._action_seq = 0
        self._awaited_reply = 0
        self._replied = trio.Event()
        self._consumer_free = trio.Event()
        self._consumer_free.set()

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return (
            f"<ChatConnection {self._target.host_header}{self._target.path} "
            f"connection={self._connection_id[:8] or '-'} seq={self._next_seq} {state}>"
        )

    @property
    def connection_id(self) -> str:
        """The server's id for the connection ("" before the first ``hello``)."""
        return self._connection_id

    @property
    def connected(self) -> bool:
        """Whether a socket is ready now."""
        return self._connected

    async def run(
        self,
        send_channel: trio.MemorySendChannel[ChatEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect and stay connected, sending events to ``send_channel``.

        Args:
            send_channel: Where the events go; ``run`` owns it and closes it when it ends.
            task_status: Started once the first socket is ready, before its
                ``ChatConnected`` is sent (so the caller may start reading afterwards).

        Returns only when the receiving side of ``send_channel`` has been closed.

        Raises:
            ChatUnavailable: ``policy.max_attempts`` attempts in a row failed.
        """
        self._send = send_channel
        self._task_status = task_status
        failures = 0
        async with send_channel:
            with self._run_scope:
                while True:
                    try:
                        await self._one_socket()
                    except ChatError as error:
                        failures = await self._after_failure(error, failures)
            logger.info("%r: nobody reads the events any more; stopped", self)

    async def _after_failure(self, error: ChatError, failures: int) -> int:
        code, reason = (error.code, error.reason) if isinstance(error, SocketLost) else (1006, "")
        reason = reason or str(error)
        lost = self._connected
        if lost:
            self._connected = False
            failures = 0  # the connection worked: start the backoff afresh
            await self._emit(ChatDisconnected(code=code, reason=reason))
        failures += 1
        if self._policy.gives_up(failures):
            raise ChatUnavailable(f"WebSocket: {failures} attempts failed; last: {reason}")
        delay = self._policy.delay(failures, self._random())
        if lost:
            logger.warning("%r: lost (%d: %s); reconnecting in %.3g s", self, code, reason, delay)
        else:
            logger.info(
                "%r: connecting failed (%s); retry %d in %.3g s", self, reason, failures, delay
            )
        await trio.sleep(delay)
        return failures

    async def _one_socket(self) -> None:
        self._ready = False
        self._resuming = bool(self._connection_id)
        self._unreadable = self._action_seq = self._awaited_reply = 0
        resource = self._target.path
        if self._resuming:
            query = {"connection_id": self._connection_id, "sequence_number": self._next_seq}
            resource += "?" + urlencode(query)
        deadline = trio.current_time() + self._handshake_timeout
        with trio.CancelScope(deadline=deadline) as self._handshake:
            async with (
                open_chat_socket(
                    self._target,
                    resource,
                    self._token,
                    connect=self._connect,
                    close_timeout=self._close_timeout,
                ) as socket,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(self._pinger, socket)
                while True:
                    await self._on_frame(await socket.receive())
        raise ChatHandshakeError(f"not ready within {self._handshake_timeout:g} s")

    async def _pinger(self, socket: ChatSocket) -> None:
        while True:
            sent_at = trio.current_time()
            self._action_seq += 1
            self._awaited_reply = self._action_seq
            self._replied = trio.Event()
            await socket.send(f'{{"seq":{self._action_seq},"action":"ping"}}')
            deadline = sent_at + self._pong_timeout
            while not self._replied.is_set():
                with trio.move_on_at(deadline):
                    await self._replied.wait()
                if self._replied.is_set():
                    break
                if not self._consumer_free.is_set():
                    await self._consumer_free.wait()
                    deadline = trio.current_time() + self._pong_timeout
                    continue
                reason = f"no reply to ping within {self._pong_timeout:g} s"
                await socket.close(4000, reason)
                raise SocketLost(4000, reason)
            await trio.sleep_until(sent_at + self._ping_interval)

    async def _on_frame(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            logger.debug("%r: binary frame of %d bytes skipped", self, len(message))
            return
        try:
            envelope = _ENVELOPE.decode(message)
        except msgspec.DecodeError as exc:
            self._unreadable += 1
            logger.warning("%r: unreadable frame skipped: %s", self, exc)
            return
        if envelope.is_reply:
            await self._on_reply(envelope)
        elif not envelope.event or envelope.seq is None:
            self._unreadable += 1
            logger.warning("%r: frame without event or seq skipped", self)
        elif envelope.event == "hello":
            await self._on_hello(envelope)
        else:
            await self._on_event(envelope, envelope.seq)

    async def _on_event(self, envelope: WsEnvelope, seq: int) -> None:
        if not self._ready and not self._resuming:
            raise SocketLost(4001, f"{envelope.event} before hello")
        if seq != self._next_seq:
            skipped = seq - self._next_seq
            if not 0 < skipped <= self._unreadable:
                if not self._ready:
                    self._connection_id = ""  # the server does not continue it: start afresh
                raise SocketLost(4001, f"sequence gap: expected {self._next_seq}, got {seq}")
            logger.warning("%r: %d unreadable frame(s) counted as events", self, skipped)
        self._next_seq = seq + 1
        self._unreadable = 0
        if not self._ready:
            await self._become_ready(resumed=True)
        try:
            event = from_envelope(envelope)
        except msgspec.DecodeError as exc:
            logger.warning(
                "%r: malformed %s event (seq %d) skipped: %s", self, envelope.event, seq, exc
            )
            return
        if event is None:
            logger.debug("%r: %s event (seq %d) ignored", self, envelope.event, seq)
            return
        await self._emit(event)

    async def _on_hello(self, envelope: WsEnvelope) -> None:
        try:
            hello = _HELLO.decode(envelope.data)
        except msgspec.DecodeError as exc:
            raise SocketLost(4001, f"unreadable hello: {describe(exc)}") from None
        if envelope.seq != 0:
            raise SocketLost(4001, f"hello with seq {envelope.seq}")
        self._connection_id = hello.connection_id
        self._next_seq = 1
        self._unreadable = 0
        await self._become_ready(resumed=False)

    async def _on_reply(self, envelope: WsEnvelope) -> None:
        seq_reply = envelope.seq_reply or 0
        if envelope.status != "OK":
            logger.debug("%r: action %d failed: %r", self, seq_reply, envelope.error)
        if self._awaited_reply and seq_reply >= self._awaited_reply:
            self._replied.set()
        if self._resuming and not self._ready:
            await self._become_ready(resumed=True)

    async def _become_ready(self, *, resumed: bool) -> None:
        self._handshake.deadline = math.inf  # a slow consumer must not fail the handshake
        self._ready = self._connected = True
        event = ChatConnected(
            connection_id=self._connection_id, reconnect=self._ever_ready, resumed=resumed
        )
        self._ever_ready = True
        logger.info("%r: ready (%s)", self, "resumed" if resumed else "new connection")
        if self._task_status is not None:
            self._task_status.started()
            self._task_status = None
        await self._emit(event)

    async def _emit(self, event: ChatEvent) -> None:
        assert self._send is not None
        self._consumer_free = trio.Event()
        try:
            await self._send.send(event)
        except trio.BrokenResourceError:
            self._run_scope.cancel()  # nobody listens: stop ``run``
            await trio.lowlevel.checkpoint()
        finally:
            self._consumer_free.set()


async def run_chat_connection(
    url: str,
    token: str,
    send_channel: trio.MemorySendChannel[ChatEvent],
    *,
    policy: RetryPolicy = DEFAULT_WS_POLICY,
    connect: StreamConnector | None = None,
    ping_interval: float = 30.0,
    pong_timeout: float = 10.0,
    handshake_timeout: float = 10.0,
    random: Callable[[], float] = _random.random,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a :class:`ChatConnection` (see there for the arguments) until nobody listens.

    ``task_status`` is started once the first socket is ready, before its ``ChatConnected``
    is sent; ``send_channel`` is closed when this returns.
    """
    connection = ChatConnection(
        url,
        token,
        policy=policy,
        connect=connect,
        ping_interval=ping_interval,
        pong_timeout=pong_timeout,
        handshake_timeout=handshake_timeout,
        random=random,
    )
    await connection.run(send_channel, task_status=task_status)
