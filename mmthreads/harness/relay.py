"""The public port of a harness server: a TCP relay in front of hypercorn.

An ASGI application cannot drop a connection without answering, close a WebSocket without a
close frame (1006), or make its server stop listening and come back on the same port; fault
drills need all of these.  So each harness server runs hypercorn on an internal loopback port
and puts a ``TcpRelay`` on the public one (``serve_behind_relay`` does both).  The relay opens
one *inner* connection to the server per client connection, pipes bytes both ways, and can

- abort one connection (close it without a proper end), found by the address of its inner end,
  which is what the server reports as the ASGI ``scope["client"]`` (``abort``);
- cut every connection at once (``abort_all``);
- stop listening, so that clients get "connection refused", and cut every connection, as a
  killed process would (``close``); then listen again on the same port (``open``).

Theory of operation
-------------------

A connection is a *link* with two directions::

    client ──inbound──▶ relay ──▶ server
    client ◀─outbound── relay ◀── server

The outbound direction decides when a link ends: when the server closes (EOF), when either
stream fails, or when its *drain window* runs out.  Then the relay closes both streams (a full
close: the client reads EOF even if it was still sending).  The drain window, ``cut_grace``
seconds long, opens when the relay stops reading the client:

- when the client finishes sending (EOF), after passing the EOF on to the server (a
  half-close), so the server can still finish its answer.  The window is what ends the link
  if the server keeps the connection instead of closing it: hypercorn keeps an idle keep-alive
  connection whose client has gone until its keep-alive timeout, and a relay waiting for it
  would hold every connection a client closed normally until then;
- when the client's stream fails;
- on ``abort``: the application has asked to close that connection without a proper end.

During the window the relay still forwards what the server writes: on loopback, whatever a
completed ``send`` wrote is readable at once, and the window covers bytes the server is about
to write.  So a WebSocket "upgraded, then aborted" delivers its ``101`` before the connection
ends, as on a real server.  An application that asks for an abort must not write anything
afterwards (it waits for the disconnect instead).

``abort_all`` and ``close`` end every link at once, with no window, as a killed process would:
a client that sends on a cut connection meets a closed socket, not a silent one.  So does
cancelling ``run``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio
from hypercorn.trio import serve

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import Framework

__all__ = ["CUT_GRACE", "SHUTDOWN_LIMIT", "TcpRelay", "serve_behind_relay"]

logger = logging.getLogger(__name__)

_CHUNK: Final = 65536
#: Seconds a link keeps forwarding the server's bytes once the client's side has ended.
CUT_GRACE: Final = 0.05
#: Seconds hypercorn gets to shut down once the relay has cut every connection.
SHUTDOWN_LIMIT: Final = 3.0


class _Link:
    """One client connection and its inner connection to the server."""

    def __init__(self, client: trio.SocketStream) -> None:
        self.client = client
        self.inner: trio.SocketStream | None = None
        #: The inner end's port: what the server sees as the client's port.
        self.inner_port: int | None = None
        #: Covers opening the inner connection; a cut before it is open ends the link.
        self.connecting = trio.CancelScope()
        #: Covers the client-to-server direction.
        self.inbound = trio.CancelScope()
        #: Covers the server-to-client direction; its deadline is the end of the drain window.
        self.outbound = trio.CancelScope()

    def wind_down(self, grace: float) -> None:
        """Stop reading the client; forward the server's bytes for ``grace`` more seconds."""
        self.connecting.cancel()
        self.inbound.cancel()
        self.outbound.deadline = min(self.outbound.deadline, trio.current_time() + grace)

    def cut(self) -> None:
        """End the link now."""
        self.connecting.cancel()
        self.inbound.cancel()
        self.outbound.cancel()


class TcpRelay:
    """Listens on ``host:port`` and relays every connection to ``target``.

    Start it with ``port = await nursery.start(relay.run)``.  The controls (``abort``,
    ``abort_all``, ``close``) are synchronous: after ``close`` returns, a new connection is
    refused; the cut connections end as soon as their tasks run (``wait_idle`` waits for that).

    Args:
        target: Where the server listens (a loopback address).
        host: The public address (keep it on loopback).
        port: The public port; 0 picks a free one, which is then kept across ``close``/``open``.
        cut_grace: Seconds a link keeps forwarding the server's bytes once the client's side has
            ended (``abort``, EOF or error); see the module docstring.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cut_grace: float = CUT_GRACE,
    ) -> None:
        self.target = target
        self.host = host
        #: The public port (the bound one, once listening).
        self.port = port
        self.cut_grace = cut_grace
        self._links: set[_Link] = set()
        self._listener: trio.SocketListener | None = None
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()

    def __repr__(self) -> str:
        state = "listening" if self.listening else "closed"
        inner_host, inner_port = self.target
        return (
            f"<TcpRelay {self.host}:{self.port} -> {inner_host}:{inner_port} {state}"
            f" connections={len(self._links)}>"
        )

    @property
    def listening(self) -> bool:
        """Whether the public port accepts connections."""
        return self._listener is not None

    @property
    def connections(self) -> int:
        """How many client connections are open (including those winding down)."""
        return len(self._links)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and relay until cancelled; reports the public port once listening.

        Raises:
            OSError: The public port cannot be bound.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self.open()
                task_status.started(self.port)
                await trio.sleep_forever()
            finally:
                # The links are cancelled with this nursery; only the listener is left.
                self._nursery = None
                self._stop_listening()

    async def open(self) -> None:
        """Listen on the public port again, after ``close`` (a no-op while listening).

        Raises:
            RuntimeError: ``run`` is not running.
            OSError: The port cannot be bound (another process took it meanwhile).
        """
        if self._nursery is None:
            raise RuntimeError(f"{self!r} is not running")
        if self._listener is not None:
            await trio.lowlevel.checkpoint()
            return
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        # One address is given, so one listener is expected; keep the first in any case.
        for extra in listeners[1:]:
            await extra.aclose()
        self._listener = listener = listeners[0]
        self.port = int(listener.socket.getsockname()[1])
        self._nursery.start_soon(self._accept, listener)
        logger.info("%r: listening", self)

    def close(self) -> None:
        """Stop listening (new connections are refused) and cut every connection."""
        self._stop_listening()
        self.abort_all()

    def abort(self, client: tuple[str, int] | None) -> bool:
        """Close the connection whose inner end has the address ``client``, without a proper end.

        What the server has written, or writes within ``cut_grace``, still reaches the client;
        nothing more from the client reaches the server.

        Args:
            client: The ASGI ``scope["client"]`` of a request (only the port is compared: every
                inner connection comes from the same loopback address).

        Returns:
            Whether such a connection was open.
        """
        if client is None:
            return False
        for link in self._links:
            if link.inner_port == client[1]:
                logger.debug("%r: aborting the connection of %s:%d", self, *client)
                link.wind_down(self.cut_grace)
                return True
        return False

    def abort_all(self) -> None:
        """Cut every connection at once (nothing more is forwarded either way)."""
        for link in self._links:
            link.cut()

    async def wait_idle(self) -> None:
        """Wait until no connection is open (both of its streams closed)."""
        await trio.lowlevel.checkpoint()
        while self._links:
            await self._changed.wait()

    def _stop_listening(self) -> None:
        if self._listener is not None:
            # Closing the socket itself, not cancelling the accepting task, refuses the next
            # connection before this returns; the blocked ``accept`` gets ClosedResourceError.
            self._listener.socket.close()
            self._listener = None
            logger.info("%r: stopped listening", self)

    async def _accept(self, listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                try:
                    client = await listener.accept()
                except trio.ClosedResourceError:
                    return
                assert self._nursery is not None
                self._nursery.start_soon(self._relay, client)

    async def _relay(self, client: trio.SocketStream) -> None:
        link = _Link(client)
        self._links.add(link)
        try:
            with link.connecting:
                try:
                    link.inner = await trio.open_tcp_stream(*self.target)
                except OSError as exc:
                    logger.warning("%r: the server is unreachable: %s", self, exc)
            if link.inner is None:
                return
            link.inner_port = int(link.inner.socket.getsockname()[1])
            logger.debug("%r: relaying through port %d", self, link.inner_port)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._inbound, link, link.inner)
                await self._outbound(link, link.inner)
                nursery.cancel_scope.cancel()
        finally:
            # Shielded: under cancellation the first ``aclose`` would skip the second.
            with trio.CancelScope(shield=True):
                await client.aclose()
                if link.inner is not None:
                    await link.inner.aclose()
            self._links.discard(link)
            self._changed.set()
            self._changed = trio.Event()
            logger.debug("%r: connection through port %s closed", self, link.inner_port)

    async def _inbound(self, link: _Link, inner: trio.SocketStream) -> None:
        # Client to server.  However it ends (EOF, error, abort), the drain window opens.
        with link.inbound:
            try:
                while data := await link.client.receive_some(_CHUNK):
                    await inner.send_all(data)
                await inner.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        link.wind_down(self.cut_grace)

    @staticmethod
    async def _outbound(link: _Link, inner: trio.SocketStream) -> None:
        # Server to client, until the server closes, a stream fails or the window runs out.
        with link.outbound:
            try:
                while data := await inner.receive_some(_CHUNK):
                    await link.client.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def serve_behind_relay(
    app: Framework,
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[TcpRelay] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with hypercorn on an internal loopback port, behind a relay on ``host:port``.

    Runs until cancelled.  On the way out, the relay stops listening and cuts every
    connection first, so hypercorn's graceful shutdown finds none left to cancel (the
    connections it cancels would leak their sockets); hypercorn then gets ``SHUTDOWN_LIMIT``
    seconds, even under cancellation.

    Args:
        app: The ASGI application.
        config: Hypercorn's configuration; its ``bind`` is replaced by an internal port.
        host: The public address (keep it on loopback).
        port: The public port; 0 picks a free one.
        task_status: Receives the relay once the public port accepts connections.
    """
    config.bind = ["127.0.0.1:0"]
    shutdown = trio.Event()
    http_scope = trio.CancelScope(shield=True)

    async def serve_http(*, task_status: trio.TaskStatus[list[str]]) -> None:
        with http_scope:
            await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve_http)
        relay = TcpRelay(("127.0.0.1", int(binds[0].rsplit(":", 1)[1])), host=host, port=port)
        await nursery.start(relay.run)
        try:
            task_status.started(relay)
            await trio.sleep_forever()
        finally:
            relay.close()
            shutdown.set()
            http_scope.deadline = trio.current_time() + SHUTDOWN_LIMIT
