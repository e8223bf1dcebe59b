"""An older real ``opencode serve`` (``OPENCODE_LEGACY_VERSION``) through the bridge's adapter.

That release speaks the older dialect (``reference/opencode-server-api.md`` §5): text deltas
inside ``message.part.updated``, ``permission.updated`` with the ``Permission`` shape, answered
only on ``POST /session/{id}/permissions/{pid}``; it has no ``/global/health``, ``/permission``
or ``/question``, and proxies unknown routes to the web app, which fails offline with a JSON 500.
One server and stub model serve the whole module; it needs ``pure=False`` and ``rg`` on its PATH
(``scripts/install-opencode.sh`` installs both).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import trio

from mmthreads.adapters.opencode import OpenCodeClient
from mmthreads.adapters.opencode_events import reconcile, run_event_stream
from mmthreads.core import agent_events as ae
from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import AgentNotFound
from mmthreads.harness.real_opencode import OPENCODE_LEGACY_VERSION, make_git_project
from mmthreads.harness.script import Reply, plan_step
from mmthreads.wire.opencode import decode_event
from mmthreads.wire.opencode_rest import TextPartInput

from .conftest import RG_FOLDER, EventLog, serve_in_background

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from .conftest import SharedOpencode

MODEL = ("stub", "stub-model")
TURN_DEADLINE = 20
POLICY = RetryPolicy(initial_delay=0.05, factor=2.0, max_delay=0.4)


@pytest.fixture(scope="module")
def legacy(
    legacy_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedOpencode]:
    """One legacy server and stub model for the module, run by a background thread."""
    project = make_git_project(tmp_path_factory.mktemp("legacy") / "project")
    with serve_in_background(legacy_binary, project, pure=False, extra_path=[RG_FOLDER]) as shared:
        yield shared


@pytest.fixture
async def legacy_events(legacy: SharedOpencode, nursery: trio.Nursery) -> AsyncIterator[EventLog]:
    """The legacy server's raw ``/event`` stream, subscribed before the test runs."""
    server = legacy.server
    async with server.client() as client:
        log = EventLog(client, server.directory)
        await nursery.start(log.run)
        yield log
        await log.aclose()


def decoded(log: EventLog, server: str) -> list[ae.AgentEvent]:
    """Every frame so far through ``decode_event``, as the bridge sees them."""
    directory = str(log.directory)
    return [
        event
        for frame in log.events
        for event in decode_event(json.dumps(frame).encode(), server=server, directory=directory)
    ]


class Recorder:
    """Keeps what ``run_event_stream`` sends, and waits for the events a test needs."""

    def __init__(self) -> None:
        self.events: list[ae.AgentEvent] = []
        self._changed = trio.Event()

    async def run(self, receive: trio.MemoryReceiveChannel[ae.AgentEvent]) -> None:
        async for event in receive:
            self.events.append(event)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[ae.AgentEvent], bool]) -> ae.AgentEvent:
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            await self._changed.wait()


async def test_version_and_missing_routes(legacy: SharedOpencode) -> None:
    server = legacy.server
    assert server.version == OPENCODE_LEGACY_VERSION  # from `opencode --version`
    with trio.fail_after(TURN_DEADLINE):
        async with server.client() as raw:
            health = await raw.get("/global/health")
        async with OpenCodeClient(server.url, policy=POLICY) as client:
            start = trio.current_time()
            with pytest.raises(AgentNotFound):
                await client.health()
            with pytest.raises(AgentNotFound):
                await client.list_permissions(str(server.directory))
            assert trio.current_time() - start < 1.0  # a missing route is not retried
    # The route is proxied to the web app, which cannot be reached offline.
    assert health.status_code == 500
    assert health.json()["name"] == "UnknownError"


async def test_plain_turn_decodes_to_text_deltas(
    legacy: SharedOpencode, legacy_events: EventLog
) -> None:
    words = "hello there, plain prompt"
    expected = plan_step(words, 0)
    assert isinstance(expected, Reply)
    server = legacy.server
    directory = str(server.directory)
    with trio.fail_after(TURN_DEADLINE):
        async with OpenCodeClient(server.url, policy=POLICY) as client:
            session = await client.create_session(directory)
            session_id = session.session_id
            await client.prompt_async(session_id, directory, [TextPartInput(text=words)], MODEL)
            await legacy_events.wait_for(
                lambda e: (
                    e["type"] == "session.idle" and e["properties"].get("sessionID") == session_id
                )
            )
    frames = legacy_events.of_session(session_id)
    kinds = {frame["type"] for frame in frames}
    assert "message.part.delta" not in kinds  # the old dialect: deltas ride on part updates
    assert any("delta" in f["properties"] for f in frames if f["type"] == "message.part.updated")
    events = [e for e in decoded(legacy_events, server.url) if _session(e) == session_id]
    text_ids = {
        e.part.part_id
        for e in events
        if isinstance(e, ae.PartUpdated) and isinstance(e.part, ae.TextPart)
    }
    deltas = [e for e in events if isinstance(e, ae.PartDelta) and e.part_id in text_ids]
    assert "".join(d.delta for d in deltas) == expected.text
    snapshots = [
        e.part for e in events if isinstance(e, ae.PartUpdated) and isinstance(e.part, ae.TextPart)
    ]
    assert isinstance(snapshots[-1], ae.TextPart)
    assert snapshots[-1].text == expected.text
    statuses = [e.status for e in events if isinstance(e, ae.SessionStatus)]
    assert statuses[-1] == "idle"
    assert any(isinstance(e, ae.SessionIdle) for e in events)


async def test_permission_and_delete_through_the_adapter(
    legacy: SharedOpencode, nursery: trio.Nursery
) -> None:
    server = legacy.server
    directory = str(server.directory)
    recorder = Recorder()
    send, receive = trio.open_memory_channel[ae.AgentEvent](1000)
    nursery.start_soon(recorder.run, receive)
    with trio.fail_after(TURN_DEADLINE):
        async with OpenCodeClient(server.url, policy=POLICY) as client:
            await nursery.start(
                lambda task_status: run_event_stream(
                    client,
                    send,
                    directories=lambda: [directory],
                    policy=POLICY,
                    task_status=task_status,
                )
            )
            connected = await recorder.wait_for(lambda e: isinstance(e, ae.AgentStreamConnected))
            assert isinstance(connected, ae.AgentStreamConnected)
            assert connected.version == ""  # no /global/health
            session = await client.create_session(directory)
            session_id = session.session_id
            parts = [TextPartInput(text="USE_TOOLS please")]
            await client.prompt_async(session_id, directory, parts, MODEL)
            asked = await recorder.wait_for(
                lambda e: isinstance(e, ae.PermissionAsked) and e.session_id == session_id
            )
            assert isinstance(asked, ae.PermissionAsked)
            pending = await reconcile(client, [directory], [session_id])
            await client.reply_permission(asked.request_id, session_id, directory, "once")
            replied = await recorder.wait_for(
                lambda e: isinstance(e, ae.PermissionReplied) and e.session_id == session_id
            )
            await recorder.wait_for(
                lambda e: isinstance(e, ae.SessionIdle) and e.session_id == session_id
            )
            await client.delete_session(session_id, directory)
            deleted = await recorder.wait_for(
                lambda e: isinstance(e, ae.SessionDeleted) and e.session_id == session_id
            )
        nursery.cancel_scope.cancel()
    assert asked.permission == "bash"
    assert asked.patterns == ("echo hello-from-tool *",)  # the legacy `pattern`, a list here
    assert asked.title == "echo hello-from-tool"
    assert asked.directory == directory
    # Reconciling finds the waiting session busy; without /permission it lists nothing pending.
    assert pending.status_of(session_id) == "busy"
    assert pending.permissions == ()
    assert isinstance(replied, ae.PermissionReplied)
    assert (replied.request_id, replied.reply) == (asked.request_id, "once")
    assert isinstance(deleted, ae.SessionDeleted)
    texts = [
        e.part.text
        for e in recorder.events
        if isinstance(e, ae.PartUpdated)
        and e.session_id == session_id
        and isinstance(e.part, ae.TextPart)
    ]
    assert texts[-1] == "Finished: tools ran OK."


def _session(event: ae.AgentEvent) -> str | None:
    session_id: Any = getattr(event, "session_id", None)
    return session_id if isinstance(session_id, str) else None
