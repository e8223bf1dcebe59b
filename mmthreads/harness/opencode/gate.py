"""The front door: a TCP relay in front of the stand-in's HTTP server.

Clients connect to the gate; the gate opens one connection to the HTTP server (hypercorn, on an
internal loopback port) per client and pipes bytes both ways.  It exists for the two things an
ASGI app cannot do by itself:

- **drop one connection without an answer** (``Drop`` at an ``http:`` fault point): the app
  knows the client by ``scope["client"]``, which is the gate's end of the inner connection, and
  asks the gate to close the matching outer connection;
- **be down**: ``close`` stops listening and cuts every connection at once, as a killed process
  would; ``open`` listens again on the same port.
"""

from __future__ import annotations

import errno
import logging
from typing import Final

import trio

__all__ = ["TcpGate"]

logger = logging.getLogger(__name__)

_CHUNK: Final = 65536


class _Link:
    """One client connection and its inner connection."""

    def __init__(self, client: trio.SocketStream, inner: trio.SocketStream) -> None:
        self.client = client
        self.inner = inner
        self.scope = trio.CancelScope()


class TcpGate:
    """Relays ``host:port`` to the HTTP server on ``backend_port``.

    Args:
        host: The address to listen on (loopback).
        backend_port: The HTTP server's port on ``127.0.0.1``.
    """

    def __init__(self, host: str, backend_port: int) -> None:
        self.host = host
        self.backend_port = backend_port
        #: The listening port, once known (kept across ``close``/``open``).
        self.port = 0
        self._links: dict[int, _Link] = {}
        self._listen_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        state = "open" if self.listening else "closed"
        return f"<TcpGate {self.host}:{self.port} {state} links={len(self._links)}>"

    @property
    def listening(self) -> bool:
        """Whether the gate accepts connections now."""
        return self._listen_scope is not None

    async def run(
        self, port: int = 0, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``port`` (0: any free one) and relay until cancelled.  Reports the port."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                self.port = await nursery.start(self._listen, port)
                task_status.started(self.port)
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def open(self) -> None:
        """Listen again on the same port (after ``close``)."""
        if self._nursery is None:
            raise RuntimeError("the gate is not running")
        if not self.listening:
            await self._nursery.start(self._listen, self.port)

    def close(self) -> None:
        """Stop listening (new connections are refused) and cut every connection."""
        if self._listen_scope is not None:
            self._listen_scope.cancel()
            self._listen_scope = None
        for link in list(self._links.values()):
            link.scope.cancel()

    def drop(self, client: tuple[str, int] | None) -> bool:
        """Close the client connection whose inner end is ``client`` (an ASGI address)."""
        if client is None:
            return False
        link = self._links.get(client[1])
        if link is None:
            return False
        link.scope.cancel()
        return True

    async def _listen(self, port: int, *, task_status: trio.TaskStatus[int]) -> None:
        listeners = await _open_listeners(port, self.host)
        bound = int(listeners[0].socket.getsockname()[1])
        assert self._nursery is not None
        with trio.CancelScope() as scope:
            self._listen_scope = scope
            task_status.started(bound)
            try:
                await trio.serve_listeners(self._relay, listeners, handler_nursery=self._nursery)
            finally:
                for listener in listeners:
                    await trio.aclose_forcefully(listener)
        logger.info("gate on %s:%d closed", self.host, bound)

    async def _relay(self, client: trio.SocketStream) -> None:
        try:
            inner = await trio.open_tcp_stream("127.0.0.1", self.backend_port)
        except OSError:
            logger.warning("gate cannot reach the HTTP server on port %d", self.backend_port)
            await trio.aclose_forcefully(client)
            return
        inner_port = int(inner.socket.getsockname()[1])
        link = self._links[inner_port] = _Link(client, inner)
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pipe, client, inner)
                    nursery.start_soon(_pipe, inner, client)
        finally:
            del self._links[inner_port]
            # Shielded: under cancellation the first checkpoint would skip the second close.
            with trio.CancelScope(shield=True):
                await client.aclose()
                await inner.aclose()


async def _open_listeners(port: int, host: str) -> list[trio.SocketListener]:
    # Just after a close, the port can still be held briefly; try a few times.
    for attempt in range(50):
        try:
            return await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0 or attempt == 49:
                raise
            await trio.sleep(0.01)
    raise AssertionError("unreachable")  # pragma: no cover


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    """Copy until ``source`` ends, then half-close ``sink``."""
    try:
        while data := await source.receive_some(_CHUNK):
            await sink.send_all(data)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
