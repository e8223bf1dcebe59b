"""The Mattermost WebSocket client against an in-memory server, on Trio's virtual clock.

The server (``memory_websocket``) plays one script per connection attempt, so reconnect
timing, resume parameters and close codes are asserted exactly.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from wsproto.utilities import LocalProtocolError

from mmthreads.adapters.mattermost_socket import WebSocketTarget, _translate, websocket_target
from mmthreads.adapters.mattermost_ws import run_chat_connection
from mmthreads.core.backoff import RetryPolicy
from mmthreads.core.chat_events import (
    ChatConnected,
    ChatDisconnected,
    ChatEvent,
    PostCreated,
    PostDeleted,
    PostEdited,
    ReactionChanged,
)
from mmthreads.errors import ChatDisconnected as SocketLost
from mmthreads.errors import ChatHandshakeError
from mmthreads.wire.mattermost import Post
from tests.adapters.memory_websocket import DM, FakeServer, ServerSocket

TOKEN = "ws-token-SECRET"
POLICY = RetryPolicy(initial_delay=1, factor=2, max_delay=4)
DEADLINE = 600  # virtual seconds
POST = {"id": "p" * 26, "channel_id": DM, "user_id": "a" * 26, "message": "hi", "create_at": 5}


async def start_client(
    nursery: trio.Nursery, server: FakeServer, *, buffer: float = 100, **options: Any
) -> trio.MemoryReceiveChannel[ChatEvent]:
    send, receive = trio.open_memory_channel[ChatEvent](buffer)
    options.setdefault("policy", POLICY)
    run = partial(run_chat_connection, "http://mm.test:8065", TOKEN, send, connect=server.connect)
    await nursery.start(partial(run, **options))
    return receive


async def test_ready_only_after_hello(autojump_clock: trio.abc.Clock, nursery: trio.Nursery):
    async def late_hello(socket: ServerSocket) -> None:
        await trio.sleep(2)
        await socket.hello("c1")

    server = FakeServer(nursery)
    server.scripts.append(late_hello)
    with trio.fail_after(DEADLINE):
        events = await start_client(nursery, server)
        assert trio.current_time() == 2.0
        assert await events.receive() == ChatConnected(connection_id="c1")
    path, headers = server.requests[0]
    assert path == "/api/v4/websocket"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert server.sockets[0].actions[0] == {"seq": 1, "action": "ping"}


async def test_events_are_decoded_in_two_phases(autojump_clock, nursery: trio.Nursery):
    reaction = {"user_id": "a" * 26, "post_id": "p" * 26, "emoji_name": "x", "create_at": 9}

    async def events(socket: ServerSocket) -> None:
        await socket.hello("c1")
        await socket.posted(POST)
        await socket.event("typing", {"parent_id": "", "user_id": "a" * 26})
        await socket.event("post_edited", {"post": json.dumps(POST | {"message": "hey"})})
        await socket.event("reaction_added", {"reaction": json.dumps(reaction)})
        await socket.event("reaction_removed", {"reaction": json.dumps(reaction)})
        await socket.event("post_deleted", {"post": json.dumps(POST)})

    server = FakeServer(nursery)
    server.scripts.append(events)
    post = Post(id="p" * 26, channel_id=DM, user_id="a" * 26, message="hi", create_at=5)
    reacted = {"user_id": "a" * 26, "post_id": "p" * 26, "emoji_name": "x", "channel_id": DM}
    with trio.fail_after(DEADLINE):
        channel = await start_client(nursery, server)
        received = [await channel.receive() for _ in range(6)]
    assert received == [
        ChatConnected(connection_id="c1"),
        PostCreated(post=post, channel_type="D", sender_name="@alice"),
        PostEdited(post=Post(**{**msgspec_fields(post), "message": "hey"})),
        ReactionChanged(added=True, **reacted),
        ReactionChanged(added=False, **reacted),
        PostDeleted(post=post),
    ]
    assert len(server.sockets) == 1


def msgspec_fields(post: Post) -> dict[str, Any]:
    return {name: getattr(post, name) for name in post.__struct_fields__}


async def test_malformed_frames_are_skipped(autojump_clock, nursery: trio.Nursery):
    async def garbage(socket: ServerSocket) -> None:
        await socket.hello("c1")
        await socket.send("not json at all")  # unreadable: may have been an event
        await socket.send(b"\x81\xa3msgpack?")  # binary frames are never asked for
        await socket.event("posted", {"post": "{broken"})  # seq 1: counted, dropped
        await socket.event("posted", {"post": json.dumps({"message": "no ids"})})  # seq 2
        await socket.send({"event": "posted", "data": {}})  # no seq
        await socket.posted(POST | {"message": "good"})  # seq 3
        await socket.send("]]")  # an unreadable frame that used seq 4 …
        await socket.posted(POST | {"message": "after"}, seq=5)  # … is not a gap

    server = FakeServer(nursery)
    server.scripts.append(garbage)
    with trio.fail_after(DEADLINE):
        channel = await start_client(nursery, server)
        received = [await channel.receive() for _ in range(3)]
    assert isinstance(received[0], ChatConnected)
    assert [e.post.message for e in received[1:] if isinstance(e, PostCreated)] == ["good", "after"]
    assert len(server.sockets) == 1


@pytest.mark.parametrize(
    "first_frame",
    [
        {"event": "posted", "data": {"post": json.dumps(POST)}, "seq": 0},
        {"event": "hello", "data": {"connection_id": "c1"}, "seq": 3},
        {"event": "hello", "data": {"server_version": "no id"}, "seq": 0},
    ],
)
async def test_a_socket_that_does_not_start_with_hello_is_not_ready(
    autojump_clock, nursery: trio.Nursery, first_frame: dict[str, Any]
):
    async def odd(socket: ServerSocket) -> None:
        await socket.send(first_frame)

    server = FakeServer(nursery)
    server.scripts.append(odd)
    with trio.fail_after(DEADLINE):
        channel = await start_client(nursery, server)
        assert await channel.receive() == ChatConnected(connection_id="conn0")
    assert server.attempts == [0.0, 1.0]
    closed = server.sockets[0].ws.closed
    assert closed is not None
    assert closed.code == 4001


async def test_a_seq_gap_reconnects_and_resumes(autojump_clock, nursery: trio.Nursery):
    async def gap(socket: ServerSocket) -> None:
        await socket.hello("c1")
        await socket.posted(POST | {"message": "one"})
        await socket.posted(POST | {"message": "three"}, seq=3)

    async def replay(socket: ServerSocket) -> None:
        await socket.posted(POST | {"message": "two"}, seq=2)
        await socket.posted(POST | {"message": "three"}, seq=3)

    server = FakeServer(nursery)
    server.scripts += [gap, replay]
    with trio.fail_after(DEADLINE):
        channel = await start_client(nursery, server)
        received = [await channel.receive() for _ in range(6)]
    connected, one, lost, resumed, two, three = received
    assert connected == ChatConnected(connection_id="c1")
    assert lost == ChatDisconnected(code=4001, reason="sequence gap: expected 2, got 3")
    assert resumed == ChatConnected(connection_id="c1", reconnect=True, resumed=True)
    messages = [e.post.message for e in (one, two, three) if isinstance(e, PostCreated)]
    assert messages == ["one", "two", "three"]
    assert server.attempts == [0.0, 1.0]
    assert server.requests[1][0] == "/api/v4/websocket?connection_id=c1&sequence_number=2"
    closed = server.sockets[0].ws.closed
    assert closed is not None
    assert closed.code == 4001


async def test_an_unanswered_ping_reconnects_at_the_exact_time(
    autojump_clock, nursery: trio.Nursery
):
    async def deaf(socket: ServerSocket) -> None:
        socket.pings_to_answer = 1  # the one sent at connect time, not the one at 30 s
        await socket.hello("c1")

    server = FakeServer(nursery)
    server.scripts.append(deaf)
    with trio.fail_after(DEADLINE):
        channel = await start_client(nursery, server, ping_interval=30, pong_timeout=10)
        assert await channel.receive() == ChatConnected(connection_id="c1")
        lost = await channel.receive()
        assert trio.current_time() == 40.0
        assert lost == ChatDisconnected(code=4000, reason="no reply to ping within 10 s")
        resumed = await channel.receive()
        assert trio.current_time() == 41.0
    assert resumed == ChatConnected(connection_id="c1", reconnect=True, resumed=True)
    assert [a["seq"] for a in server.sockets[0].actions] == [1, 2]
    closed = server.sockets[0].ws.closed
    assert closed is not None
    assert closed.code == 4000
    assert server.requests[1][0] == "/api/v4/websocket?connection_id=c1&sequence_number=1"


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (None, ChatConnected(connection_id="c1", reconnect=True, resumed=True)),
        ("c2", ChatConnected(connection_id="c2", reconnect=True, resumed=False)),
    ],
)
async def test_after_an_abnormal_close_the_connection_resumes_or_starts_afresh(
    autojump_clock, nursery: trio.Nursery, second: str | None, expected: ChatConnected
):
    async def dropped(socket: ServerSocket) -> None:
        await socket.hello("c1")
        await socket.posted(POST)
        await socket.drop()

    async def after(socket: ServerSocket) -> None:
        if second is not None:
            await socket.hello(second)  # the server lost the connection: a new one

    server = FakeServer(nursery)
    server.scripts += [dropped, after]
    with trio.fail_after(DEADLINE):
        channel = await start_client(nursery, server)
        received = [await channel.receive() for _ in range(4)]
    assert received[2] == ChatDisconnected(code=1006, reason="ABNORMAL_CLOSURE")
    assert received[3] == expected
    assert server.requests[1][0] == "/api/v4/websocket?connection_id=c1&sequence_number=2"


async def test_the_backoff_schedule_is_exact(autojump_clock, nursery: trio.Nursery):
    async def short_lived(socket: ServerSocket) -> None:
        await socket.hello("c1")
        await trio.sleep(5)
        await socket.drop()

    server = FakeServer(nursery)
    server.scripts += ["refuse", "reject", "eof", short_lived, "refuse"]
    with trio.fail_after(DEADLINE):
        # refused at 0, rejected at 1, the upgrade hangs from 3 until the 5 s handshake
        # timeout at 8, then 4 s (the cap): ready at 12.
        channel = await start_client(nursery, server, handshake_timeout=5)
        assert trio.current_time() == 12.0
        assert await channel.receive() == ChatConnected(connection_id="c1")
        assert await channel.receive() == ChatDisconnected(code=1006, reason="ABNORMAL_CLOSURE")
        # A ready connection resets the count: 1 s, refused, 2 s, resumed.
        assert await channel.receive() == ChatConnected(
            connection_id="c1", reconnect=True, resumed=True
        )
    assert server.attempts == [0.0, 1.0, 3.0, 12.0, 18.0, 20.0]


async def test_jitter_takes_its_random_number_from_the_caller(autojump_clock, nursery):
    server = FakeServer(nursery)
    server.scripts.append("refuse")
    policy = RetryPolicy(initial_delay=2, jitter=0.5)
    with trio.fail_after(DEADLINE):
        await start_client(nursery, server, policy=policy, random=lambda: 0.0)
    assert server.attempts == [0.0, 1.0]


async def test_giving_up_after_max_attempts(autojump_clock, nursery: trio.Nursery):
    server = FakeServer(nursery)
    server.scripts += ["refuse"] * 3
    send, _receive = trio.open_memory_channel[ChatEvent](10)
    policy = RetryPolicy(initial_delay=1, max_attempts=2)
    with trio.fail_after(DEADLINE), pytest.raises(Exception, match="3 attempts failed") as caught:
        await run_chat_connection("http://h", TOKEN, send, policy=policy, connect=server.connect)
    assert type(caught.value).__name__ == "ChatUnavailable"
    assert server.attempts == [0.0, 1.0, 3.0]


async def test_a_slow_consumer_does_not_trip_the_watchdog(autojump_clock, nursery):
    async def one_post(socket: ServerSocket) -> None:
        await socket.hello("c1")
        await trio.sleep(1)
        await socket.posted(POST)

    server = FakeServer(nursery)
    server.scripts.append(one_post)
    with trio.fail_after(DEADLINE):
        channel = await start_client(nursery, server, buffer=0, ping_interval=30, pong_timeout=10)
        assert isinstance(await channel.receive(), ChatConnected)
        await trio.sleep(100)  # the reader is stuck handing over the post meanwhile
        assert isinstance(await channel.receive(), PostCreated)
        await trio.sleep(100)
    with pytest.raises(trio.WouldBlock):
        channel.receive_nowait()
    assert len(server.sockets) == 1


async def test_it_stops_when_nobody_listens(autojump_clock, nursery: trio.Nursery):
    async def later(socket: ServerSocket) -> None:
        await socket.hello("c1")

    stopped = trio.Event()

    async def client(task_status: trio.TaskStatus[None]) -> None:
        await run_chat_connection(
            "ws://mm.test/api/v4/websocket",
            TOKEN,
            send,
            policy=POLICY,
            connect=server.connect,
            task_status=task_status,
        )
        stopped.set()

    server = FakeServer(nursery)
    server.scripts.append(later)
    send, receive = trio.open_memory_channel[ChatEvent](0)
    with trio.fail_after(DEADLINE):
        await nursery.start(client)
        await receive.aclose()
        await stopped.wait()
    assert trio.current_time() == 0.0  # the polite close did not wait for a timeout
    closed = server.sockets[0].ws.closed
    assert closed is not None
    assert closed.code == 1000


def target(host: str, port: int, secure: bool, host_header: str, path: str) -> WebSocketTarget:
    return WebSocketTarget(host=host, port=port, secure=secure, host_header=host_header, path=path)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8065", target("h", 8065, False, "h:8065", "/api/v4/websocket")),
        ("https://h/mm/", target("h", 443, True, "h", "/mm/api/v4/websocket")),
        ("ws://h:80/api/v4/websocket/", target("h", 80, False, "h", "/api/v4/websocket")),
        ("wss://h:8443/api/v4", target("h", 8443, True, "h:8443", "/api/v4/websocket")),
    ],
)
def test_the_websocket_url_is_derived(url: str, expected: WebSocketTarget) -> None:
    assert websocket_target(url) == expected


@pytest.mark.parametrize(
    ("errors", "upgraded", "expected"),
    [
        ([LocalProtocolError("pong while closing")], True, SocketLost(1006, "")),
        ([OSError("reset")], False, ChatHandshakeError("")),
        ([trio.BrokenResourceError(), SocketLost(4001, "gap")], True, SocketLost(4001, "gap")),
    ],
)
def test_library_errors_from_the_reader_task_are_mapped(
    errors: list[Exception], upgraded: bool, expected: Exception
) -> None:
    group = BaseExceptionGroup("socket", [ExceptionGroup("reader", errors)])
    mapped = _translate(group, upgraded=upgraded)
    assert type(mapped) is type(expected)
    if isinstance(expected, SocketLost):
        assert isinstance(mapped, SocketLost)
        assert mapped.code == expected.code


def test_a_bug_is_not_mapped() -> None:
    group = BaseExceptionGroup("socket", [KeyError("bug"), OSError("reset")])
    with pytest.RaisesGroup(KeyError):
        _translate(group, upgraded=True)
