"""The front door: a small TCP relay between clients and the HTTP server.

ASGI gives an application no way to drop a connection without a proper answer, yet a fault
drill needs exactly that: a WebSocket closed abnormally (1006, no close frame), an HTTP request
never answered, a server that stops listening and comes back on the same port.  So the
emulator's public port belongs to this relay, which pipes bytes to hypercorn on a private
port and can cut any pipe, or stop and restart listening, at will.  A pipe is found by the
port of its upstream socket, which is what the ASGI scope reports as ``client``.

Cutting a pipe first forwards what the server already wrote (on loopback, everything a
completed ``send`` wrote is readable at once), waiting at most ``CUT_GRACE`` for more, then
closes both sides: so a WebSocket "upgraded, then closed without a word" really delivers its
``101`` before the connection ends, as on the real server.  The application must not write
anything after asking for the cut (it waits for the disconnect instead).
"""

from __future__ import annotations

import logging
from typing import Final

import trio

__all__ = ["FrontDoor"]

logger = logging.getLogger(__name__)

_CHUNK: Final = 65536
#: How long a cut pipe keeps forwarding server bytes that are still arriving.
CUT_GRACE: Final = 0.05


class _Pipe:
    def __init__(self, downstream: trio.SocketStream) -> None:
        self.downstream = downstream
        self.upstream: trio.SocketStream | None = None
        #: Cancels everything (listener closing, errors).
        self.scope = trio.CancelScope()
        #: Cancels the client-to-server direction when the pipe is cut.
        self.inbound = trio.CancelScope()
        #: The pending read from the server, whose deadline a cut shortens.
        self.reading: trio.CancelScope | None = None
        self.cutting = False

    def cut(self) -> None:
        self.cutting = True
        self.inbound.cancel()
        if self.reading is not None:
            self.reading.deadline = min(self.reading.deadline, trio.current_time() + CUT_GRACE)


class FrontDoor:
    """Listens on ``host:port`` and relays every connection to ``upstream``.

    Args:
        upstream: Where the HTTP server listens.
        host: The public address (loopback only).
        port: The public port (0 picks a free one, kept across restarts).
    """

    def __init__(
        self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.upstream = upstream
        self.host = host
        self.port = port
        self._pipes: dict[int, _Pipe] = {}
        self._all: set[_Pipe] = set()
        self._nursery: trio.Nursery | None = None
        self._accepting: trio.CancelScope | None = None

    def __repr__(self) -> str:
        state = "listening" if self.listening else "closed"
        return f"<FrontDoor {self.host}:{self.port} {state} pipes={len(self._all)}>"

    @property
    def listening(self) -> bool:
        """Whether the public port accepts connections."""
        return self._accepting is not None

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and relay until cancelled; reports the public port once listening."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.open()
            task_status.started(self.port)
            await trio.sleep_forever()

    async def open(self) -> None:
        """Start listening on the public port (the same one after a ``close``)."""
        assert self._nursery is not None, "run() first"
        if self._accepting is None:
            self._accepting = await self._nursery.start(self._accept_loop)

    async def close(self) -> None:
        """Stop listening (clients get "connection refused") and cut every pipe."""
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        self.abort_all()
        await trio.lowlevel.checkpoint()

    async def _accept_loop(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        listener = listeners[0]
        for extra in listeners[1:]:
            await extra.aclose()
        self.port = listener.socket.getsockname()[1]
        with trio.CancelScope() as scope:
            task_status.started(scope)
            async with listener:
                assert self._nursery is not None
                while True:
                    stream = await listener.accept()
                    self._nursery.start_soon(self._relay, stream)
        logger.debug("front door stopped listening on %s:%d", self.host, self.port)

    def abort(self, client: tuple[str, int]) -> bool:
        """Cut the connection whose upstream socket has address ``client``; True if found."""
        pipe = self._pipes.get(client[1])
        if pipe is None:
            return False
        pipe.cut()
        return True

    def abort_all(self) -> None:
        """Cut every connection at once."""
        for pipe in list(self._all):
            pipe.scope.cancel()

    async def _relay(self, downstream: trio.SocketStream) -> None:
        pipe = _Pipe(downstream)
        self._all.add(pipe)
        port = None
        try:
            with pipe.scope:
                try:
                    pipe.upstream = await trio.open_tcp_stream(*self.upstream)
                except OSError:
                    logger.warning("front door: upstream %s:%d unreachable", *self.upstream)
                    return
                port = pipe.upstream.socket.getsockname()[1]
                self._pipes[port] = pipe
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._inbound, pipe, downstream, pipe.upstream)
                    nursery.start_soon(self._outbound, pipe, pipe.upstream, downstream)
        finally:
            self._all.discard(pipe)
            if port is not None:
                self._pipes.pop(port, None)
            with trio.CancelScope(shield=True):
                await downstream.aclose()
                if pipe.upstream is not None:
                    await pipe.upstream.aclose()

    @staticmethod
    async def _inbound(pipe: _Pipe, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        # Client to server.  A clean end of stream is passed on as a half-close; an error
        # cuts the whole pipe; a cut stops this direction at once.
        with pipe.inbound:
            try:
                while data := await source.receive_some(_CHUNK):
                    await sink.send_all(data)
                await sink.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pipe.scope.cancel()

    @staticmethod
    async def _outbound(pipe: _Pipe, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        # Server to client.  Only the read is ever interrupted by a cut, never a write, so
        # whatever the server wrote is forwarded whole or not at all.
        try:
            while True:
                data = None
                with trio.CancelScope() as pipe.reading:
                    if pipe.cutting:
                        pipe.reading.deadline = trio.current_time() + CUT_GRACE
                    data = await source.receive_some(_CHUNK)
                pipe.reading = None
                if data is None:
                    break  # cut, and the server has nothing more in flight
                if not data:
                    if not pipe.cutting:
                        await sink.send_eof()
                    break
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            if pipe.cutting:
                pipe.scope.cancel()
