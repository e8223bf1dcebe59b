"""One Mattermost WebSocket over trio-websocket, with every library failure mapped.

:func:`open_chat_socket` opens the byte stream with an injectable ``connect`` (TCP, or TLS for
``https``/``wss``; tests pass one end of ``trio.testing.memory_stream_pair()``), upgrades it
with the token in the ``Authorization`` header (the only mode the server lets resume,
reference §3.1), and yields a :class:`ChatSocket`.

trio-websocket 0.12 needs handling at three places, all done here:

- after an abnormal closure it leaves the stream open, so this module owns the stream and
  closes it itself (an unclosed socket is a ``ResourceWarning``);
- its reader task raises into the nursery (``ConnectionRejected``; a wsproto
  ``LocalProtocolError`` when a ping arrives while closing), so the nursery is ours and its
  exception group is translated on purpose;
- the stream ending during the upgrade leaves it waiting forever, so callers bound the
  upgrade with a deadline.

On the way out, library failures become :class:`~mmthreads.errors.ChatHandshakeError` (before
the upgrade completed) or :class:`~mmthreads.errors.ChatDisconnected` (after); ``ChatError``
raised by the body passes unchanged, and so does anything else (``Cancelled``, bugs).
"""

from __future__ import annotations

import logging
import ssl
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Final, TypeAlias, cast
from urllib.parse import urlsplit, urlunsplit

import msgspec
import trio
import trio_websocket
from wsproto.utilities import ProtocolError

from mmthreads.adapters.mattermost_http import api_url
from mmthreads.errors import ChatDisconnected, ChatError, ChatHandshakeError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = [
    "ChatSocket",
    "StreamConnector",
    "WebSocketTarget",
    "default_connector",
    "open_chat_socket",
    "websocket_target",
]

logger = logging.getLogger(__name__)

#: Opens the byte stream under the WebSocket: ``await connect(host, port)``.
StreamConnector: TypeAlias = "Callable[[str, int], Awaitable[trio.abc.Stream]]"

#: What breaks a socket, as the libraries under us say it.
TRANSPORT_ERRORS: Final = (
    trio_websocket.ConnectionClosed,
    trio_websocket.HandshakeError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
    ProtocolError,
)


class WebSocketTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where the WebSocket lives.

    Attributes:
        host: Host to connect to.
        port: Port to connect to.
        secure: Whether to use TLS.
        host_header: The ``Host`` header (``host:port`` unless the port is the default).
        path: The upgrade path, e.g. ``/api/v4/websocket``.
    """

    host: str
    port: int
    secure: bool
    host_header: str
    path: str


def websocket_target(url: str) -> WebSocketTarget:
    """The WebSocket of a server URL.

    Accepts the server URL (``http(s)://host[:port]``, with or without ``/api/v4``) or the
    WebSocket URL itself (``ws(s)://…/api/v4/websocket``).

    Raises:
        ConfigError: Not such a URL.
    """
    parts = urlsplit(url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/").removesuffix("/websocket")
    base = urlsplit(api_url(urlunsplit((scheme, parts.netloc, path, "", ""))))
    secure = scheme == "https"
    default = 443 if secure else 80
    host = base.hostname or ""
    port = base.port or default
    return WebSocketTarget(
        host=host,
        port=port,
        secure=secure,
        host_header=host if port == default else f"{host}:{port}",
        path=f"{base.path}/websocket",
    )


def default_connector(target: WebSocketTarget) -> StreamConnector:
    """``trio.open_tcp_stream``, wrapped in TLS when the target is secure."""
    if not target.secure:
        return trio.open_tcp_stream
    context = ssl.create_default_context()
    return partial(trio.open_ssl_over_tcp_stream, ssl_context=context, https_compatible=True)


def describe(exc: BaseException) -> str:
    """``Type: message`` for a log line or a reason."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _leaves(exc: BaseException) -> list[BaseException]:
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    return [leaf for member in exc.exceptions for leaf in _leaves(member)]


def _lost(exc: BaseException) -> ChatDisconnected:
    """The ``ChatDisconnected`` the block raised (perhaps in a group), or a normal closure."""
    found = [leaf for leaf in _leaves(exc) if isinstance(leaf, ChatDisconnected)]
    return found[0] if found else ChatDisconnected(1000, "")


class _ShieldedStarter:
    """Starts trio-websocket's reader task out of reach of cancellation from outside.

    A polite close needs the reader to receive the server's close frame.  Cancelled with
    everything else, it never would, and every shutdown would wait ``close_timeout``; so the
    reader gets a shielded scope, which ``open_chat_socket`` cancels itself after closing.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.scope = trio.CancelScope(shield=True)

    def start_soon(self, fn: Callable[[], Awaitable[object]], name: object = None) -> None:
        self._nursery.start_soon(self._run, fn)

    async def _run(self, fn: Callable[[], Awaitable[object]]) -> None:
        with self.scope:
            await fn()


class ChatSocket:
    """An upgraded WebSocket: receive frames, send text, close politely."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, close_timeout: float) -> None:
        self._ws = ws
        self._close_timeout = close_timeout

    def __repr__(self) -> str:
        return f"<ChatSocket {self._ws}>"

    async def receive(self) -> str | bytes:
        """The next frame (text is JSON; binary is msgpack, which we never ask for)."""
        return await self._ws.get_message()

    async def send(self, text: str) -> None:
        """Send a text frame."""
        await self._ws.send_message(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``, waiting at most ``close_timeout`` for the server's answer.

        Shielded, so it also runs while the caller is being cancelled; idempotent.
        """
        with trio.move_on_after(self._close_timeout, shield=True):
            try:
                await self._ws.aclose(code, reason or None)
            except TRANSPORT_ERRORS as exc:
                logger.debug("%r: closing: %s", self, describe(exc))


@asynccontextmanager
async def open_chat_socket(
    target: WebSocketTarget,
    resource: str,
    token: str,
    *,
    connect: StreamConnector,
    close_timeout: float = 2.0,
) -> AsyncIterator[ChatSocket]:
    """Connect and upgrade; close the socket (and the stream) when the block ends.

    The block's ``ChatDisconnected`` close code is sent to the server (1000 otherwise).

    Args:
        target: Where to connect.
        resource: Path and query of the upgrade request.
        token: The access token, sent as ``Authorization: Bearer``.
        connect: Opens the byte stream.
        close_timeout: Seconds to wait for the server to answer our close.

    Raises:
        ChatHandshakeError: Connecting or upgrading failed.
        ChatDisconnected: The socket broke while the block ran.
    """
    headers = [(b"Authorization", f"Bearer {token}".encode())]
    stream: trio.abc.Stream | None = None
    socket: ChatSocket | None = None
    try:
        async with trio.open_nursery() as nursery:
            reader = _ShieldedStarter(nursery)
            try:
                stream = await connect(target.host, target.port)
                ws = await trio_websocket.wrap_client_stream(
                    cast("trio.Nursery", reader),  # it only calls ``start_soon``
                    # Any trio stream works; the hint names only the usual two.
                    cast("trio.SocketStream", stream),
                    target.host_header,
                    resource,
                    extra_headers=headers,
                )
                socket = ChatSocket(ws, close_timeout)
                yield socket
            except BaseException as exc:
                if socket is not None:
                    lost = _lost(exc)
                    await socket.close(lost.code, lost.reason)
                raise
            finally:
                # Stops trio-websocket's reader task, which would otherwise wait forever.
                reader.scope.cancel()
    except BaseExceptionGroup as group:
        raise _translate(group, upgraded=socket is not None) from None
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)


def _translate(group: BaseExceptionGroup[BaseException], *, upgraded: bool) -> ChatError:
    """The one error that says why the socket ended; anything unexpected is re-raised."""
    expected, rest = group.split((ChatError, *TRANSPORT_ERRORS))
    if rest is not None:
        # Cancelled (a deadline, shutting down) or a bug: let it through, minus a socket
        # that broke at the same moment.
        raise rest
    assert expected is not None
    leaves = _leaves(expected)
    for leaf in leaves:
        if isinstance(leaf, ChatError):
            return leaf
    leaf = leaves[0]
    if isinstance(leaf, trio_websocket.ConnectionRejected):
        return ChatHandshakeError(f"upgrade refused with HTTP {leaf.status_code}")
    if not upgraded:
        return ChatHandshakeError(describe(leaf))
    if isinstance(leaf, trio_websocket.ConnectionClosed) and leaf.reason is not None:
        return ChatDisconnected(leaf.reason.code, leaf.reason.reason or leaf.reason.name)
    return ChatDisconnected(1006, describe(leaf))
