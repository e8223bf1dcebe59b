"""The SSE consumer over ``httpx.MockTransport`` on Trio's mock clock: framing, the watchdog,
reconnect backoff, the ``/event`` fallback, and the REST reconcile."""

from __future__ import annotations

import itertools
import json
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from mmthreads.adapters.opencode import OpenCodeClient
from mmthreads.adapters.opencode_events import SseParser, reconcile, run_event_stream
from mmthreads.core import agent_events as ae
from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import AgentWireError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

URL = "http://127.0.0.1:4096"
A = "/home/dev/proj-a"
B = "/home/dev/proj-b"
POLICY = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=8.0)
HTML = httpx.Response(200, headers={"content-type": "text/html"}, text="<html></html>")


def frame(kind: str, props: dict[str, Any] | None = None, directory: str | None = None) -> bytes:
    """One SSE frame; wrapped like ``/global/event`` when ``directory`` is given."""
    event: dict[str, Any] = {"type": kind, "properties": props or {}}
    if directory is not None:
        event = (
            {"payload": event} if directory == "" else {"directory": directory, "payload": event}
        )
    return b"data: " + json.dumps(event).encode() + b"\n\n"


CONNECTED_G = frame("server.connected", directory="")
HEARTBEAT_G = frame("server.heartbeat", directory="")


def idle(session: str, directory: str | None = None) -> bytes:
    return frame("session.idle", {"sessionID": session}, directory)


class Stream(httpx.AsyncByteStream):
    """A scripted SSE body: ``bytes`` are sent, a number sleeps, ``None`` ends, an exception
    breaks the connection, and the body ends by staying open forever."""

    def __init__(self, steps: Iterable[bytes | float | Exception | None]) -> None:
        self.steps = list(steps)
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for step in self.steps:
            if step is None:
                return
            if isinstance(step, Exception):
                raise step
            if isinstance(step, bytes):
                yield step
            else:
                await trio.sleep(step)
        await trio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


class Server:
    """Answers health, and each stream request with the next scripted body (or a response)."""

    def __init__(self, streams: dict[str, list[Any]], routes: dict[str, Any] | None = None):
        self.streams = streams
        self.routes = routes or {}
        self.log: list[tuple[float, str]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        where = request.url.params.get("directory", "")
        key = request.url.path + (f"?{where}" if where else "")
        self.log.append((trio.current_time(), key))
        if key in self.streams:
            script = self.streams[key]
            step = script.pop(0) if len(script) > 1 else script[0]
            if isinstance(step, httpx.Response | Exception):
                if isinstance(step, Exception):
                    raise step
                return step
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=Stream(step)
            )
        if request.url.path == "/global/health":
            return httpx.Response(200, json={"healthy": True, "version": "1.18.33"})
        answer = self.routes.get(f"{request.method} {key}", HTML)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    def opened(self, path: str) -> list[float]:
        return [t for t, key in self.log if key == path]


async def follow(
    nursery: trio.Nursery,
    server: Server,
    *,
    directories: Iterable[str] = (),
    heartbeat_timeout: float = 30.0,
) -> trio.MemoryReceiveChannel[ae.AgentEvent]:
    client = OpenCodeClient(URL, transport=httpx.MockTransport(server))
    send, receive = trio.open_memory_channel[ae.AgentEvent](100)
    await nursery.start(
        partial(
            run_event_stream,
            client,
            send,
            directories=lambda: list(directories),
            policy=POLICY,
            heartbeat_timeout=heartbeat_timeout,
        )
    )
    return receive


async def next_event(receive: trio.MemoryReceiveChannel[ae.AgentEvent]) -> ae.AgentEvent:
    with trio.fail_after(1000):
        return await receive.receive()


CONNECTED = ae.AgentStreamConnected(server=URL, version="1.18.33")


async def test_frames_split_across_chunks_arrive_whole_and_in_order(nursery, autojump_clock):
    body = CONNECTED_G + idle("ses_1", A) + frame("session.idle", {"sessionID": "ses_2"}, B)
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    # A malformed frame is skipped; a sync envelope gives nothing.
    sync = b'data: {"directory":"/x","payload":{"type":"sync","syncEvent":{}}}\n\n'
    steps: list[Any] = [*chunks, b"data: {oops\n\n", sync, idle("ses_3", A).replace(b"\n", b"\r\n")]
    receive = await follow(nursery, Server({"/global/event": [steps]}))
    assert await next_event(receive) == CONNECTED
    assert [await next_event(receive) for _ in range(3)] == [
        ae.SessionIdle(server=URL, directory=A, session_id="ses_1"),
        ae.SessionIdle(server=URL, directory=B, session_id="ses_2"),
        ae.SessionIdle(server=URL, directory=A, session_id="ses_3"),
    ]


async def test_the_watchdog_fires_after_the_timeout_and_reconnect_follows_the_backoff(
    nursery, autojump_clock
):
    # First stream: connected, a heartbeat at t=5, then silence.  Then two refused reconnects
    # (503), then a stream that works.
    down = httpx.Response(503)
    server = Server(
        {
            "/global/event": [
                [CONNECTED_G, 5.0, HEARTBEAT_G],
                down,
                down,
                [CONNECTED_G, idle("s", A)],
            ]
        }
    )
    receive = await follow(nursery, server, heartbeat_timeout=30.0)
    assert await next_event(receive) == CONNECTED
    lost = await next_event(receive)
    assert trio.current_time() == 35.0
    assert lost == ae.AgentStreamLost(server=URL, reason="no events or heartbeats for 30 s")
    assert await next_event(receive) == CONNECTED
    # Lost once, not again for each refused attempt; backoff 1, 2, 4 s after the loss.
    assert server.opened("/global/event") == [0.0, 36.0, 38.0, 42.0]
    assert trio.current_time() == 42.0
    assert await next_event(receive) == ae.SessionIdle(server=URL, directory=A, session_id="s")


async def test_no_watchdog_before_the_first_heartbeat(nursery, autojump_clock):
    # A 1.0-era server sends no heartbeats: a quiet stream is not a dead one.
    server = Server({"/global/event": [[CONNECTED_G, 500.0, idle("s", A)]]})
    receive = await follow(nursery, server, heartbeat_timeout=30.0)
    assert await next_event(receive) == CONNECTED
    assert await next_event(receive) == ae.SessionIdle(server=URL, directory=A, session_id="s")
    assert trio.current_time() == 500.0


async def test_a_closed_or_broken_stream_is_lost_then_reconnected(nursery, autojump_clock):
    server = Server(
        {
            "/global/event": [
                [CONNECTED_G, 3.0, None],
                [CONNECTED_G, 2.0, httpx.ReadError("reset")],
                [CONNECTED_G],
            ]
        }
    )
    receive = await follow(nursery, server)
    events = [await next_event(receive) for _ in range(5)]
    assert events == [
        CONNECTED,
        ae.AgentStreamLost(server=URL, reason="the server closed the event stream"),
        CONNECTED,
        ae.AgentStreamLost(
            server=URL,
            reason="the event stream broke: OpenCode call failed (no answer, "
            "ReadError): connection failed: reset",
        ),
        CONNECTED,
    ]
    # The attempt count restarts after each successful connection.
    assert server.opened("/global/event") == [0.0, 4.0, 7.0]


async def test_an_unreachable_server_is_reported_lost_once(nursery, autojump_clock):
    server = Server({"/global/event": [httpx.ConnectError("refused")]})
    receive = await follow(nursery, server)
    lost = await next_event(receive)
    assert isinstance(lost, ae.AgentStreamLost)
    assert "could not connect" in lost.reason
    await trio.sleep(100)
    assert receive.statistics().current_buffer_used == 0
    assert server.opened("/global/event")[:6] == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0]


@pytest.mark.parametrize("absent", [httpx.Response(404, json={"name": "NotFoundError"}), HTML])
async def test_without_global_event_each_directory_gets_its_own_stream(
    nursery, autojump_clock, absent
):
    server = Server(
        {
            "/global/event": [absent],
            f"/event?{A}": [[frame("server.connected"), idle("sa")]],
            f"/event?{B}": [[frame("server.connected"), 1.0, idle("sb")]],
        }
    )
    receive = await follow(nursery, server, directories=[A, B])
    events = [await next_event(receive) for _ in range(3)]
    assert ae.SessionIdle(server=URL, directory=A, session_id="sa") in events
    assert events.count(CONNECTED) == 1
    assert events[-1] == ae.SessionIdle(server=URL, directory=B, session_id="sb")
    # Announced only once both streams are up (B's first frame came at once too).
    assert events.index(CONNECTED) < events.index(events[-1])


async def test_one_directory_stream_ending_restarts_them_all(nursery, autojump_clock):
    followed = [A]
    server = Server(
        {
            "/global/event": [httpx.Response(404)],
            f"/event?{A}": [[frame("server.connected"), 20.0, None], [frame("server.connected")]],
            f"/event?{B}": [[frame("server.connected"), idle("sb")]],
        }
    )
    client = OpenCodeClient(URL, transport=httpx.MockTransport(server))
    send, receive = trio.open_memory_channel[ae.AgentEvent](100)
    await nursery.start(
        partial(run_event_stream, client, send, directories=lambda: followed, policy=POLICY)
    )
    assert await next_event(receive) == CONNECTED
    followed.append(B)  # picked up at the next look (every 5 s)
    assert await next_event(receive) == ae.SessionIdle(server=URL, directory=B, session_id="sb")
    assert trio.current_time() == 5.0
    lost = await next_event(receive)
    assert trio.current_time() == 20.0
    assert isinstance(lost, ae.AgentStreamLost)
    assert lost.reason == f"{A}: the server closed the event stream"
    assert await next_event(receive) == CONNECTED
    assert server.opened(f"/event?{A}") == [0.0, 21.0]
    assert server.opened(f"/event?{B}") == [5.0, 21.0]


@pytest.mark.parametrize("per_directory", [False, True])
async def test_the_stream_stops_when_nobody_listens(autojump_clock, per_directory):
    streams: dict[str, list[Any]] = {"/global/event": [[CONNECTED_G, idle("s", A)]]}
    if per_directory:
        streams = {"/global/event": [HTML], f"/event?{A}": [[frame("server.connected"), idle("s")]]}
    client = OpenCodeClient(URL, transport=httpx.MockTransport(Server(streams)))
    send, receive = trio.open_memory_channel[ae.AgentEvent](0)
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(run_event_stream, client, send, directories=lambda: [A], policy=POLICY)
            )
            assert await receive.receive() == CONNECTED
            await receive.aclose()
    # run_event_stream returned on its own: the nursery closed.


# --- SSE framing -------------------------------------------------------------------------------


def test_sse_frames_lines_and_fields() -> None:
    parser = SseParser()
    stream = b': comment\r\nid: 1\r\nevent: x\r\ndata: {"a":\r\ndata:1}\r\n\r\ndata: b\n\n\n'
    assert parser.feed(stream) == [b'{"a":\n1}', b"b"]
    assert parser.feed(b"data: c\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\n") == [b"c"]


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_sse_frames_survive_any_chunking(cuts: list[int]) -> None:
    body = b"".join(
        b"data: " + json.dumps({"type": "t", "n": n, "s": "\u00e9" * n}).encode() + sep
        for n, sep in enumerate([b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\n"])
    )
    bounds = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    parser = SseParser()
    out: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        out += parser.feed(body[start:end])
    assert [json.loads(frame)["n"] for frame in out] == [0, 1, 2, 3]


def test_an_oversized_frame_is_refused() -> None:
    parser = SseParser(max_frame=100)
    with pytest.raises(AgentWireError, match="larger"):
        parser.feed(b"data: " + b"x" * 200)


# --- reconcile ---------------------------------------------------------------------------------


def session(sid: str, directory: str, archived: float | None = None) -> dict[str, Any]:
    time: dict[str, Any] = {"created": 1, "updated": 2}
    if archived is not None:
        time["archived"] = archived
    return {"id": sid, "slug": "x", "directory": directory, "title": sid, "time": time}


async def test_reconcile_reports_what_exists_what_is_gone_and_what_is_pending():
    permission = {
        "id": "per_1",
        "sessionID": "ses_busy",
        "permission": "bash",
        "patterns": ["ls"],
        "metadata": {},
        "always": ["ls *"],
    }
    question = {"id": "que_1", "sessionID": "ses_busy", "questions": []}
    routes = {
        "GET /session/ses_busy": session("ses_busy", A),
        "GET /session/ses_old": session("ses_old", A, archived=5),
        "GET /session/ses_gone": httpx.Response(404, json={"name": "NotFoundError"}),
        f"GET /session?{A}": [session("ses_busy", A), session("ses_new", A)],
        f"GET /session/status?{A}": {"ses_busy": {"type": "busy"}},
        f"GET /permission?{A}": [permission],
        f"GET /question?{A}": [question],
    }
    client = OpenCodeClient(URL, transport=httpx.MockTransport(Server({}, routes)))
    result = await reconcile(client, [A], ["ses_busy", "ses_old", "ses_gone"])
    assert set(result.sessions) == {"ses_busy", "ses_old", "ses_new"}
    assert result.gone == {"ses_gone"}
    assert result.archived == {"ses_old"}
    assert result.status_of("ses_busy") == "busy"
    assert result.status_of("ses_old") == "idle"
    assert [p.request_id for p in result.permissions] == ["per_1"]
    assert result.permissions[0].directory == A
    assert [q.request_id for q in result.questions] == ["que_1"]


async def test_reconcile_on_an_old_server_without_permission_and_question_routes():
    routes = {
        "GET /session/ses_1": session("ses_1", A),
        f"GET /session?{A}": [session("ses_1", A)],
        f"GET /session/status?{A}": {},
    }
    client = OpenCodeClient(URL, transport=httpx.MockTransport(Server({}, routes)))
    result = await reconcile(client, [A], ["ses_1"])
    assert list(result.sessions) == ["ses_1"]
    assert result.permissions == ()
    assert result.questions == ()
