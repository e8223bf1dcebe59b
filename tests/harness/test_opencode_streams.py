"""SSE streams of the stand-in, in memory on Trio's mock clock: framing, heartbeats, scoping,
the ``/global/event`` envelope and the ``sse:*`` fault points."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.lowlevel

from mmthreads.harness.faults import CutStream, Delay, Drop, FaultPlan, Silence
from mmthreads.harness.opencode import OpenCodeStandIn

PROJ_A = "/home/dev/proj-a"
PROJ_B = "/home/dev/proj-b"


class Collector:
    """Runs one stream and keeps ``(virtual time, decoded frame)`` pairs."""

    def __init__(self, standin: OpenCodeStandIn, directory: str | None) -> None:
        self.standin = standin
        self.directory = directory
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.raw: list[bytes] = []
        self.ended = trio.Event()

    async def send(self, data: bytes) -> None:
        self.raw.append(data)
        assert data.startswith(b"data: ")
        assert data.endswith(b"\n\n")
        self.frames.append((trio.current_time(), json.loads(data[6:])))

    async def run(self) -> None:
        try:
            await self.standin.stream_events(self.directory, self.send)
        finally:
            self.ended.set()

    def types(self) -> list[str]:
        return [f.get("payload", f)["type"] for _, f in self.frames]


async def open_stream(
    nursery: trio.Nursery, standin: OpenCodeStandIn, directory: str | None
) -> Collector:
    collector = Collector(standin, directory)
    count = len(standin.streams)
    nursery.start_soon(collector.run)
    await standin.wait_streams(count + 1)
    return collector


async def test_connected_first_then_a_heartbeat_every_ten_seconds(nursery, autojump_clock):
    standin = OpenCodeStandIn(directory=PROJ_A)
    t0 = trio.current_time()
    stream = await open_stream(nursery, standin, PROJ_A)
    await trio.sleep(25)
    assert stream.types() == ["server.connected", "server.heartbeat", "server.heartbeat"]
    assert [t - t0 for t, _ in stream.frames] == [0, 10, 20]
    for raw in stream.raw:  # data lines only: no id:, event: or retry:
        assert raw.count(b"\n") == 2
    connected = stream.frames[0][1]
    assert connected["id"].startswith("evt_")
    assert connected["properties"] == {}


async def test_legacy_servers_send_no_heartbeat_and_no_event_ids(nursery, autojump_clock):
    standin = OpenCodeStandIn(directory=PROJ_A, dialect="legacy")
    stream = await open_stream(nursery, standin, PROJ_A)
    await trio.sleep(35)
    assert stream.types() == ["server.connected"]
    assert "id" not in stream.frames[0][1]


async def test_event_is_scoped_to_its_directory_and_global_wraps(nursery, autojump_clock):
    standin = OpenCodeStandIn(directory=PROJ_A)
    a = await open_stream(nursery, standin, PROJ_A)
    b = await open_stream(nursery, standin, PROJ_B)
    everything = await open_stream(nursery, standin, None)
    session = standin.create_session(PROJ_B, title="proj2")
    await trio.sleep(1)
    assert a.types() == ["server.connected"]
    assert b.types() == ["server.connected", "session.created"]
    frames = [f for _, f in everything.frames]
    assert frames[0] == {"payload": frames[0]["payload"]}  # no directory on server.connected
    project = standin.state.instance(PROJ_B).project.id
    assert frames[1] == {
        "directory": "global",
        "project": project,
        "payload": frames[1]["payload"],
    }
    assert frames[1]["payload"]["type"] == "project.updated"
    assert frames[2]["directory"] == PROJ_B
    assert frames[2]["project"] == project
    assert frames[2]["payload"]["properties"]["sessionID"] == session.id


async def test_event_faults_drop_delay_and_cut(nursery, autojump_clock):
    plan = FaultPlan()
    plan.add("sse:event:session.created", Drop())
    plan.add("sse:event:session.updated", Delay(seconds=3))
    plan.add("sse:event:session.deleted", CutStream())
    standin = OpenCodeStandIn(directory=PROJ_A, plan=plan)
    stream = await open_stream(nursery, standin, PROJ_A)
    session = standin.create_session(title="x")
    t0 = trio.current_time()
    standin.archive_session(session.id)
    await standin.wait_event("session.updated")
    await trio.sleep(5)
    assert stream.types() == ["server.connected", "session.updated"]
    assert stream.frames[-1][0] - t0 == 3
    standin.delete_session(session.id)
    await stream.ended.wait()
    assert stream.types() == ["server.connected", "session.updated"]
    assert [r.target for r in plan.records] == [
        "sse:event:session.created",
        "sse:event:session.updated",
        "sse:event:session.deleted",
    ]
    assert standin.streams == set()


async def test_silence_stalls_events_and_heartbeats(nursery, autojump_clock):
    plan = FaultPlan()
    plan.add("sse:heartbeat", Silence(seconds=15))
    standin = OpenCodeStandIn(directory=PROJ_A, plan=plan)
    t0 = trio.current_time()
    stream = await open_stream(nursery, standin, PROJ_A)
    await trio.sleep(12)
    standin.create_session(title="during the silence")
    await trio.sleep(20)
    times = [
        (round(t - t0), kind) for (t, _), kind in zip(stream.frames, stream.types(), strict=True)
    ]
    # the beat due at 10 s is held until 25 s; the event queued at 12 s follows it; one beat
    # ten seconds later — no burst of missed beats.
    assert times == [
        (0, "server.connected"),
        (25, "server.heartbeat"),
        (25, "session.created"),
    ]
    await trio.sleep(10)
    assert [round(t - t0) for t, _ in stream.frames][3:] == [35]
    assert plan.recorded("sse:heartbeat")[0].outcome == Silence(seconds=15)


async def test_cut_streams_ends_every_stream(nursery, autojump_clock):
    standin = OpenCodeStandIn(directory=PROJ_A)
    one = await open_stream(nursery, standin, PROJ_A)
    two = await open_stream(nursery, standin, None)
    assert standin.cut_streams() == 2
    await one.ended.wait()
    await two.ended.wait()
    assert standin.streams == set()


@pytest.mark.parametrize("dialect", ["current", "legacy"])
async def test_streamed_text_shapes_per_dialect(nursery, autojump_clock, dialect):
    standin = OpenCodeStandIn(directory=PROJ_A, dialect=dialect)
    await nursery.start(standin.run)
    stream = await open_stream(nursery, standin, PROJ_A)
    session = standin.create_session(title="t")
    await standin.prompt(session.id, "Say hello")
    await trio.lowlevel.checkpoint()
    frames = [f for _, f in stream.frames]
    kinds = {f["type"] for f in frames}
    text_updates = [
        f["properties"]
        for f in frames
        if f["type"] == "message.part.updated" and f["properties"]["part"]["type"] == "text"
    ]
    if dialect == "current":
        assert "message.part.delta" in kinds
        assert all(set(p) == {"sessionID", "part", "time"} for p in text_updates)
        created = next(f for f in frames if f["type"] == "session.created")
        assert set(created["properties"]) == {"sessionID", "info"}
    else:
        assert "message.part.delta" not in kinds
        deltas = [p["delta"] for p in text_updates if "delta" in p]
        assert "".join(deltas) == "Hello from the stub model! You said: Say hello"
        assert all(set(p) <= {"part", "delta"} for p in text_updates)
        created = next(f for f in frames if f["type"] == "session.created")
        assert set(created["properties"]) == {"info"}
        assert all("id" not in f for f in frames)
