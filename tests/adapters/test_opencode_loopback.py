"""The OpenCode adapters against the harness stand-in over 127.0.0.1, in both dialects.

Real clock, short chunk delays, every wait under ``trio.fail_after``.  The stand-in runs with a
password, so every call and stream here also proves the basic auth.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import pytest
import trio

from mmthreads.adapters.opencode import OpenCodeClient
from mmthreads.adapters.opencode_events import reconcile, run_event_stream
from mmthreads.core import agent_events as ae
from mmthreads.core.backoff import RetryPolicy
from mmthreads.harness.faults import FaultPlan, Silence, Status
from mmthreads.harness.opencode import OpenCodeServer, OpenCodeStandIn, serve_opencode_standin
from mmthreads.wire.opencode_rest import TextPartInput

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

TIMEOUT = 10.0
PASSWORD = "loopback-pw"
MODEL = ("stub", "stub-model")
POLICY = RetryPolicy(initial_delay=0.05, factor=2.0, max_delay=0.4)
Dialect = Literal["current", "legacy"]
DIALECTS = pytest.mark.parametrize("dialect", ["current", "legacy"])


class Recorder:
    """Keeps every event the stream sends, and waits for the ones a test needs."""

    def __init__(self) -> None:
        self.events: list[ae.AgentEvent] = []
        self._changed = trio.Event()

    async def run(self, receive: trio.MemoryReceiveChannel[ae.AgentEvent]) -> None:
        async for event in receive:
            self.events.append(event)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(
        self, predicate: Callable[[ae.AgentEvent], bool], since: int = 0
    ) -> tuple[int, ae.AgentEvent]:
        """The first matching event at position ``since`` or later, and its position."""
        with trio.fail_after(TIMEOUT):
            while True:
                for index in range(since, len(self.events)):
                    if predicate(self.events[index]):
                        return index, self.events[index]
                since = len(self.events)
                await self._changed.wait()

    async def wait_type(self, kind: type[Any], since: int = 0, **fields: object) -> int:
        def match(event: ae.AgentEvent) -> bool:
            return isinstance(event, kind) and all(
                getattr(event, k) == v for k, v in fields.items()
            )

        return (await self.wait_for(match, since))[0]


class Bridge:
    """A stand-in server, a client for it and the event stream, running."""

    def __init__(self, server: OpenCodeServer, client: OpenCodeClient, directory: str) -> None:
        self.server = server
        self.standin: OpenCodeStandIn = server.standin
        self.client = client
        self.directory = directory
        self.recorder = Recorder()

    async def turn_events(self, session_id: str, since: int) -> list[ae.AgentEvent]:
        """This session's events from ``since`` up to its ``session.idle``."""
        end = await self.recorder.wait_type(ae.SessionIdle, since, session_id=session_id)
        return [
            e
            for e in self.recorder.events[since : end + 1]
            if getattr(e, "session_id", None) == session_id
        ]


@asynccontextmanager
async def open_bridge(
    tmp_path: Path,
    dialect: Dialect = "current",
    *,
    plan: FaultPlan | None = None,
    heartbeat_interval: float | Literal["default"] | None = "default",
    heartbeat_timeout: float = 30.0,
) -> AsyncIterator[Bridge]:
    directory = str(tmp_path)
    standin = OpenCodeStandIn(
        directory=directory,
        plan=plan,
        password=PASSWORD,
        dialect=dialect,
        chunk_delay=0.001,
        heartbeat_interval=heartbeat_interval,
    )
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve_opencode_standin, standin))
        async with OpenCodeClient(server.url, password=PASSWORD, policy=POLICY) as client:
            bridge = Bridge(server, client, directory)
            send, receive = trio.open_memory_channel[ae.AgentEvent](1000)
            nursery.start_soon(bridge.recorder.run, receive)
            await nursery.start(
                partial(
                    run_event_stream,
                    client,
                    send,
                    directories=lambda: [directory],
                    policy=POLICY,
                    heartbeat_timeout=heartbeat_timeout,
                )
            )
            await bridge.recorder.wait_type(ae.AgentStreamConnected)
            try:
                yield bridge
            finally:
                nursery.cancel_scope.cancel()


@DIALECTS
async def test_a_session_started_elsewhere_arrives_as_created(tmp_path, dialect) -> None:
    async with open_bridge(tmp_path, dialect) as bridge:
        [(_, connected)] = [
            (i, e)
            for i, e in enumerate(bridge.recorder.events)
            if isinstance(e, ae.AgentStreamConnected)
        ]
        assert isinstance(connected, ae.AgentStreamConnected)
        assert connected.version == ("1.18.33" if dialect == "current" else "1.0.150")
        session = bridge.standin.create_session(bridge.directory, title="from the TUI")
        _, event = await bridge.recorder.wait_for(
            lambda e: isinstance(e, ae.SessionUpserted) and e.info.session_id == session.id
        )
    assert isinstance(event, ae.SessionUpserted)
    assert event.created
    assert event.directory == bridge.directory
    assert event.info.title == "from the TUI"
    assert event.server == bridge.client.server


@DIALECTS
async def test_a_prompts_deltas_add_up_to_the_reply_and_the_turn_ends_idle(
    tmp_path, dialect
) -> None:
    async with open_bridge(tmp_path, dialect) as bridge:
        client, directory = bridge.client, bridge.directory
        session = await client.create_session(directory, title="t")
        since = len(bridge.recorder.events)
        await client.prompt_async(
            session.session_id, directory, [TextPartInput(text="hello there")], MODEL
        )
        events = await bridge.turn_events(session.session_id, since)
        history = await client.messages(session.session_id, directory)
    text_parts = {
        e.part.part_id: e.part
        for e in events
        if isinstance(e, ae.PartUpdated) and isinstance(e.part, ae.TextPart)
    }
    deltas = "".join(
        e.delta for e in events if isinstance(e, ae.PartDelta) and e.part_id in text_parts
    )
    reply = "Hello from the stub model! You said: hello there"
    assert deltas == reply
    assert reply in [p.text for p in text_parts.values()]
    assert any(isinstance(e, ae.PartDelta) and e.part_id not in text_parts for e in events)
    assert isinstance(events[-1], ae.SessionIdle)
    if dialect == "current":
        statuses = [e.status for e in events if isinstance(e, ae.SessionStatus)]
        assert statuses[-1] == "idle"
    # The history holds the same answer, ready to complete an interrupted post.
    assert [m.info.role for m in history] == ["user", "assistant"]
    assert reply in [p.text for p in history[-1].parts if isinstance(p, ae.TextPart)]
    assert history[-1].info.finish == "stop"


@DIALECTS
async def test_a_permission_ask_is_answered_through_the_client(tmp_path, dialect) -> None:
    async with open_bridge(tmp_path, dialect) as bridge:
        client, directory = bridge.client, bridge.directory
        session = await client.create_session(directory)
        sid = session.session_id
        since = len(bridge.recorder.events)
        await client.prompt_async(sid, directory, [TextPartInput(text="USE_TOOLS please")], MODEL)
        index, asked = await bridge.recorder.wait_for(
            lambda e: isinstance(e, ae.PermissionAsked) and e.session_id == sid, since
        )
        assert isinstance(asked, ae.PermissionAsked)
        assert asked.permission == "bash"
        assert asked.patterns == ("echo hello-from-tool",)
        assert asked.call_id
        if dialect == "current":
            assert asked.always == ("echo *",)
            assert [p.request_id for p in await client.list_permissions(directory)] == [
                asked.request_id
            ]
        await client.reply_permission(asked.request_id, sid, directory, "once")
        await bridge.recorder.wait_type(
            ae.PermissionReplied, index, request_id=asked.request_id, reply="once"
        )
        events = await bridge.turn_events(sid, index)
        paths = [(r.method, r.path) for r in bridge.standin.requests]
    tools = [
        e.part for e in events if isinstance(e, ae.PartUpdated) and isinstance(e.part, ae.ToolPart)
    ]
    assert ("bash", "completed", "hello-from-tool\n") in [
        (t.tool, t.status, t.output) for t in tools
    ]
    legacy_route = ("POST", f"/session/{sid}/permissions/{asked.request_id}")
    assert (legacy_route in paths) is (dialect == "legacy")


async def test_a_question_is_answered_through_the_client(tmp_path) -> None:
    async with open_bridge(tmp_path) as bridge:
        client, directory = bridge.client, bridge.directory
        sid = (await client.create_session(directory)).session_id
        since = len(bridge.recorder.events)
        await client.prompt_async(sid, directory, [TextPartInput(text="ASK_QUESTION")], MODEL)
        index, asked = await bridge.recorder.wait_for(
            lambda e: isinstance(e, ae.QuestionAsked) and e.session_id == sid, since
        )
        assert isinstance(asked, ae.QuestionAsked)
        [question] = asked.questions
        assert [o.label for o in question.options] == ["Red", "Blue"]
        pending = await reconcile(client, [directory], [sid])
        assert [q.request_id for q in pending.questions] == [asked.request_id]
        assert pending.status_of(sid) == "busy"
        await client.reply_question(asked.request_id, directory, [["Red"]])
        await bridge.recorder.wait_type(
            ae.QuestionResolved, index, request_id=asked.request_id, answers=(("Red",),)
        )
        events = await bridge.turn_events(sid, index)
    texts = [
        e.part.text
        for e in events
        if isinstance(e, ae.PartUpdated) and isinstance(e.part, ae.TextPart)
    ]
    # The script echoes the question tool's output, which quotes the answer.
    assert any(t.startswith("You chose: ") and '"Red"' in t for t in texts)


@DIALECTS
async def test_cut_streams_and_a_restart_reconnect_and_reconcile(tmp_path, dialect) -> None:
    async with open_bridge(tmp_path, dialect) as bridge:
        client, directory, recorder = bridge.client, bridge.directory, bridge.recorder
        sid = (await client.create_session(directory, title="keep")).session_id
        for disrupt in ("cut", "restart"):
            since = len(recorder.events)
            if disrupt == "cut":
                assert bridge.server.cut_streams() >= 1
            else:
                await bridge.server.restart(down_for=0.2)
            lost = await recorder.wait_type(ae.AgentStreamLost, since)
            await recorder.wait_type(ae.AgentStreamConnected, lost)
            result = await reconcile(client, [directory], [sid])
            assert sid in result.sessions
            assert result.sessions[sid].title == "keep"
            assert result.gone == frozenset()
            assert result.status_of(sid) == "idle"
        # Exactly one loss per disruption, however many reconnects the restart took.
        kinds = [
            type(e).__name__
            for e in recorder.events
            if isinstance(e, ae.AgentStreamConnected | ae.AgentStreamLost)
        ]
    assert kinds == ["AgentStreamConnected", *["AgentStreamLost", "AgentStreamConnected"] * 2]


@DIALECTS
async def test_a_deleted_session(tmp_path, dialect) -> None:
    async with open_bridge(tmp_path, dialect) as bridge:
        client, directory = bridge.client, bridge.directory
        sid = (await client.create_session(directory)).session_id
        since = len(bridge.recorder.events)
        bridge.standin.delete_session(sid)
        await bridge.recorder.wait_type(ae.SessionDeleted, since, session_id=sid)
        result = await reconcile(client, [directory], [sid])
    assert result.gone == {sid}
    assert sid not in result.sessions


async def test_a_silent_stream_trips_the_watchdog(tmp_path) -> None:
    plan = FaultPlan()
    plan.add("sse:heartbeat", Silence(seconds=5.0), after=2)
    async with open_bridge(
        tmp_path, plan=plan, heartbeat_interval=0.05, heartbeat_timeout=0.5
    ) as bridge:
        recorder = bridge.recorder
        start = trio.current_time()
        lost = await recorder.wait_type(ae.AgentStreamLost)
        elapsed = trio.current_time() - start
        event = recorder.events[lost]
        assert isinstance(event, ae.AgentStreamLost)
        assert event.reason == "no events or heartbeats for 0.5 s"
        assert 0.5 <= elapsed < 3.0
        await recorder.wait_type(ae.AgentStreamConnected, lost)
        # The new stream works: a session shows up on it.
        session = bridge.standin.create_session(bridge.directory)
        await recorder.wait_for(
            lambda e: isinstance(e, ae.SessionUpserted) and e.info.session_id == session.id, lost
        )


async def test_without_global_event_the_directory_stream_is_followed(tmp_path) -> None:
    plan = FaultPlan()
    plan.add("http:GET /global/event", Status(status=404), times=0)
    async with open_bridge(tmp_path, plan=plan) as bridge:
        session = bridge.standin.create_session(bridge.directory)
        _, event = await bridge.recorder.wait_for(
            lambda e: isinstance(e, ae.SessionUpserted) and e.info.session_id == session.id
        )
        streams = [r.path for r in bridge.standin.requests if r.path.endswith("/event")]
        directories = [r.directory for r in bridge.standin.requests if r.path == "/event"]
    assert event.directory == bridge.directory
    assert streams[:2] == ["/global/event", "/event"]
    assert directories == [bridge.directory]
