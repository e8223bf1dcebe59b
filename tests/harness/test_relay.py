"""The TCP relay alone, over loopback, with a small TCP server behind it.

Every test runs under ``trio.fail_after(DEADLINE)`` and waits on events, on EOF or on
``TcpRelay.wait_idle``, never on a sleep.  A link that stayed open would hang its test until the
deadline, and a socket left open fails the run as a ``ResourceWarning``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, cast

import httpx
import pytest
import trio
from hypercorn.config import Config

from mmthreads.harness.relay import TcpRelay, serve_behind_relay

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    from hypercorn.typing import ASGIFramework

DEADLINE = 5


class Backend:
    """The server behind the relay: runs ``handler`` per connection, records the peers."""

    def __init__(self, handler: Callable[[trio.SocketStream], Awaitable[None]]) -> None:
        self.handler = handler
        #: The address of each connection's relay end, in order (the ASGI ``client``).
        self.peers: list[tuple[str, int]] = []
        self.connected = trio.Event()

    async def __call__(self, stream: trio.SocketStream) -> None:
        self.peers.append(stream.socket.getpeername())
        self.connected.set()
        async with stream:
            try:
                await self.handler(stream)
            except trio.BrokenResourceError:
                pass


async def start_relay(
    nursery: trio.Nursery, backend: Backend, *, cut_grace: float = 0.05
) -> TcpRelay:
    listeners = await nursery.start(partial(trio.serve_tcp, backend, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    relay = TcpRelay(("127.0.0.1", port), cut_grace=cut_grace)
    await nursery.start(relay.run)
    return relay


async def connect(relay: TcpRelay) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", relay.port)


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, "EOF too early"
        data += chunk
    return bytes(data)


async def echo(stream: trio.SocketStream) -> None:
    async for data in stream:
        await stream.send_all(data)


async def test_bytes_flow_both_ways_until_the_client_closes(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, Backend(echo))
        payload = bytes(range(256)) * 4096  # 1 MiB: more than any socket buffer
        async with await connect(relay) as client, trio.open_nursery() as inner:

            async def send() -> None:
                await client.send_all(payload)
                await client.send_eof()

            inner.start_soon(send)
            assert await read_to_eof(client) == payload
        await relay.wait_idle()
        assert relay.connections == 0


async def test_a_half_closed_client_still_gets_the_answer(nursery: trio.Nursery) -> None:
    async def count(stream: trio.SocketStream) -> None:
        received = len(await read_to_eof(stream))
        await stream.send_all(b"got %d bytes" % received)

    with trio.fail_after(DEADLINE):
        # A window far longer than the test: the answer and the end come from the server.
        relay = await start_relay(nursery, Backend(count), cut_grace=3600)
        async with await connect(relay) as client:
            await client.send_all(b"hello")
            await client.send_eof()
            assert await read_to_eof(client) == b"got 5 bytes"
        await relay.wait_idle()


async def test_client_eof_closes_the_link_when_the_server_holds_on(
    nursery: trio.Nursery,
) -> None:
    # The server sees the EOF but keeps its end open, as hypercorn does with an idle
    # keep-alive connection: the relay still ends the link once its window is over.
    saw_eof = trio.Event()

    async def hold(stream: trio.SocketStream) -> None:
        await read_to_eof(stream)
        saw_eof.set()
        await trio.sleep_forever()

    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, Backend(hold))
        async with await connect(relay) as client:
            await client.send_eof()
            await saw_eof.wait()
            assert await read_to_eof(client) == b""
        await relay.wait_idle()


async def test_server_eof_closes_the_client(nursery: trio.Nursery) -> None:
    async def greet_and_leave(stream: trio.SocketStream) -> None:
        await stream.send_all(b"bye")

    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, Backend(greet_and_leave), cut_grace=3600)
        async with await connect(relay) as client:
            # The client neither sends nor closes: the link ends all the same.
            assert await read_to_eof(client) == b"bye"
            await relay.wait_idle()


async def test_abort_cuts_one_connection_only(nursery: trio.Nursery) -> None:
    backend = Backend(echo)
    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, backend)
        async with await connect(relay) as first:
            await first.send_all(b"1")
            assert await first.receive_some() == b"1"
            async with await connect(relay) as second:
                await second.send_all(b"2")
                assert await second.receive_some() == b"2"
                assert relay.connections == 2

                assert relay.abort(backend.peers[0])
                assert await read_to_eof(first) == b""

                await second.send_all(b"still here")
                assert await receive_exactly(second, 10) == b"still here"
        assert not relay.abort(backend.peers[0])
        assert not relay.abort(None)
        await relay.wait_idle()


async def test_a_cut_forwards_what_the_server_already_wrote(nursery: trio.Nursery) -> None:
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    written = trio.Event()

    async def upgrade_then_hang(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(answer)
        written.set()
        await trio.sleep_forever()

    backend = Backend(upgrade_then_hang)
    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, backend)
        async with await connect(relay) as client:
            await client.send_all(b"GET /api/v4/websocket HTTP/1.1\r\n\r\n")
            await written.wait()
            # Cut before the relay has necessarily read a byte of the answer.
            assert relay.abort(backend.peers[0])
            assert await read_to_eof(client) == answer
        await relay.wait_idle()


async def test_a_cut_forwards_what_the_server_writes_within_the_window(
    nursery: trio.Nursery,
) -> None:
    asked = trio.Event()
    cut = trio.Event()

    async def answer_late(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        asked.set()
        await cut.wait()
        await stream.send_all(b"late")

    backend = Backend(answer_late)
    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, backend, cut_grace=3600)
        async with await connect(relay) as client:
            await client.send_all(b"ask")
            await asked.wait()
            assert relay.abort(backend.peers[0])
            cut.set()
            assert await read_to_eof(client) == b"late"
        await relay.wait_idle()


async def test_abort_all_cuts_every_connection_at_once(nursery: trio.Nursery) -> None:
    backend = Backend(echo)
    with trio.fail_after(DEADLINE):
        # A window far longer than the test: abort_all does not wait for it.
        relay = await start_relay(nursery, backend, cut_grace=3600)
        async with await connect(relay) as first, await connect(relay) as second:
            for client in (first, second):
                await client.send_all(b"x")
                assert await client.receive_some() == b"x"
            relay.abort_all()
            assert relay.listening
            assert await read_to_eof(first) == b""
            assert await read_to_eof(second) == b""
        await relay.wait_idle()


async def test_close_refuses_and_open_accepts_on_the_same_port(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, Backend(echo), cut_grace=3600)
        port = relay.port
        async with await connect(relay) as before:
            await before.send_all(b"x")
            assert await before.receive_some() == b"x"

            relay.close()
            assert not relay.listening
            with pytest.raises(OSError, match="all attempts to connect"):
                await trio.open_tcp_stream("127.0.0.1", port)
            # Listening again while the cut connection may still be winding down.
            await relay.open()
            assert relay.listening
            assert relay.port == port
            assert await read_to_eof(before) == b""

        async with await connect(relay) as after:
            await after.send_all(b"y")
            assert await after.receive_some() == b"y"
        await relay.wait_idle()


async def test_an_unreachable_server_closes_the_client(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mmthreads.harness.relay")
    # A port that was just free: nothing listens on it.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    dead_port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()
    with trio.fail_after(DEADLINE):
        relay = TcpRelay(("127.0.0.1", dead_port))
        await nursery.start(relay.run)
        async with await connect(relay) as client:
            assert await read_to_eof(client) == b""
        await relay.wait_idle()
    assert "unreachable" in caplog.text


async def test_cancelling_run_closes_every_connection_at_once(nursery: trio.Nursery) -> None:
    backend = Backend(echo)
    with trio.fail_after(DEADLINE):
        listeners = await nursery.start(partial(trio.serve_tcp, backend, 0, host="127.0.0.1"))
        relay = TcpRelay(("127.0.0.1", listeners[0].socket.getsockname()[1]), cut_grace=3600)
        relay_scope = trio.CancelScope()

        async def run_relay(*, task_status: trio.TaskStatus[int]) -> None:
            with relay_scope:
                await relay.run(task_status=task_status)

        await nursery.start(run_relay)
        async with await connect(relay) as client:
            await backend.connected.wait()
            relay_scope.cancel()  # no window, however long
            assert await read_to_eof(client) == b""
        await relay.wait_idle()
        assert not relay.listening


async def test_open_needs_run() -> None:
    relay = TcpRelay(("127.0.0.1", 1))
    with pytest.raises(RuntimeError, match="not running"):
        await relay.open()


async def test_repr_shows_the_ports_and_the_state(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        relay = await start_relay(nursery, Backend(echo))
        target = relay.target[1]
        assert repr(relay) == (
            f"<TcpRelay 127.0.0.1:{relay.port} -> 127.0.0.1:{target} listening connections=0>"
        )
        relay.close()
        assert "closed connections=0" in repr(relay)


# -- serve_behind_relay: hypercorn on an internal port, the relay on the public one ----------


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: 200 ``hi`` to every request."""
    if scope["type"] == "lifespan":
        while True:
            stage = (await receive())["type"]  # lifespan.startup, then lifespan.shutdown
            await send({"type": f"{stage}.complete"})
            if stage == "lifespan.shutdown":
                return
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hi"})


hello = cast("ASGIFramework", _hello)


def _config() -> Config:
    config = Config()
    config.keep_alive_timeout = 3600  # an idle connection is never closed by hypercorn
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.harness.hypercorn")
    return config


async def test_a_connection_the_client_closed_is_released(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        relay: TcpRelay = await nursery.start(partial(serve_behind_relay, hello, _config()))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.port}") as client:
            assert (await client.get("/")).text == "hi"
            assert relay.connections == 1
        # hypercorn keeps its end for the keep-alive timeout; the relay does not wait for it.
        await relay.wait_idle()


async def test_cancelling_serve_behind_relay_cuts_and_shuts_down() -> None:
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient() as client:
            async with trio.open_nursery() as nursery:
                relay: TcpRelay = await nursery.start(partial(serve_behind_relay, hello, _config()))
                url = f"http://127.0.0.1:{relay.port}/"
                assert (await client.get(url)).text == "hi"
                nursery.cancel_scope.cancel()
            assert not relay.listening
            assert relay.connections == 0
            with pytest.raises(httpx.ConnectError):
                await client.get(url)
