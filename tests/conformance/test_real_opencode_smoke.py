"""A real ``opencode serve`` (the pinned release) driven by the stub model, end to end.

The turn tests share one server and stub model (``shared_opencode``); each opens its own
session, subscribes to ``/event`` and plays one scripted turn, which must come out exactly as
``mmthreads.harness.script`` says.  Tests that need another set-up start a fresh server
(``real_opencode``).  The real clock runs throughout; every test has a ``trio.fail_after`` guard.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio

from mmthreads.harness.real_opencode import OPENCODE_VERSION
from mmthreads.harness.script import Attachment, Reply, plan_step, tool_calls_in
from mmthreads.harness.stub_model import title_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.real_opencode import RealOpencode
    from mmthreads.harness.stub_model import RecordedRequest, RunningStubModel

    from .conftest import EventLog, SharedOpencode

MODEL = {"providerID": "stub", "modelID": "stub-model"}
TURN_DEADLINE = 20


async def new_session(client: httpx.AsyncClient) -> str:
    response = await client.post("/session", json={})
    assert response.status_code == 200
    session_id: str = response.json()["id"]
    return session_id


async def prompt(client: httpx.AsyncClient, session_id: str, *parts: dict[str, Any]) -> None:
    body = {"parts": list(parts), "model": MODEL}
    response = await client.post(f"/session/{session_id}/prompt_async", json=body)
    assert response.status_code == 204, response.text


def model_turn(words: str) -> Callable[[RecordedRequest], bool]:
    """Matches the stub's requests for the turn (not the title) of the prompt ``words``."""
    return lambda r: not r.is_title and r.prompt == words


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def file_part(data: bytes, mime: str, filename: str) -> dict[str, Any]:
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return {"type": "file", "mime": mime, "url": url, "filename": filename}


Event = dict[str, Any]


def of_type(kind: str, session_id: str) -> Callable[[Event], bool]:
    """Matches events of type ``kind`` about one session."""

    def check(event: Event) -> bool:
        return bool(event["type"] == kind and event["properties"].get("sessionID") == session_id)

    return check


def is_idle(session_id: str) -> Callable[[Event], bool]:
    """Matches the session's ``session.status`` idle."""
    status = of_type("session.status", session_id)
    return lambda event: status(event) and event["properties"]["status"]["type"] == "idle"


def reply_text(events: EventLog, session_id: str) -> str:
    """The concatenated text deltas of the session's assistant ``text`` parts."""
    text_parts = {
        e["properties"]["part"]["id"]
        for e in events.of_session(session_id, "message.part.updated")
        if e["properties"]["part"]["type"] == "text"
        and not e["properties"]["part"].get("synthetic")
    }
    return "".join(
        e["properties"]["delta"]
        for e in events.of_session(session_id, "message.part.delta")
        if e["properties"]["field"] == "text" and e["properties"]["partID"] in text_parts
    )


def final_text(events: EventLog, session_id: str) -> str:
    """The text of the last assistant text part, from its last snapshot."""
    snapshots = [
        e["properties"]["part"]
        for e in events.of_session(session_id, "message.part.updated")
        if e["properties"]["part"]["type"] == "text"
    ]
    text: str = snapshots[-1]["text"]
    return text


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def test_health_reports_the_pinned_version(shared_opencode: SharedOpencode) -> None:
    server = shared_opencode.server
    async with server.client() as client:
        response = await client.get("/global/health")
    assert response.json() == {"healthy": True, "version": OPENCODE_VERSION}
    assert server.version == OPENCODE_VERSION
    assert server.pid > 0
    assert server.running


async def test_plain_prompt_streams_the_scripted_reply(
    shared_opencode: SharedOpencode, shared_events: EventLog
) -> None:
    words = "hello there, plain prompt"
    expected = plan_step(words, 0)
    assert isinstance(expected, Reply)
    with trio.fail_after(TURN_DEADLINE):
        async with shared_opencode.server.client() as client:
            session_id = await new_session(client)
            await prompt(client, session_id, text_part(words))
            await shared_events.wait_for(is_idle(session_id))
        request = await shared_opencode.wait_request(model_turn(words))
        title = await shared_opencode.wait_request(lambda r: r.is_title and r.prompt == words)
    assert reply_text(shared_events, session_id) == expected.text
    assert final_text(shared_events, session_id) == expected.text
    reasoning = [
        e["properties"]["part"]["text"]
        for e in shared_events.of_session(session_id, "message.part.updated")
        if e["properties"]["part"]["type"] == "reasoning"
    ]
    assert reasoning[-1] == expected.reasoning
    # The turn ends idle; the stub saw the prompt as typed, with OpenCode's tools offered.
    last_status = shared_events.of_session(session_id, "session.status")[-1]
    assert last_status["properties"]["status"] == {"type": "idle"}
    assert {"bash", "question", "todowrite"} <= set(request.tools)
    assert request.stream
    assert request.finished
    # The title request has no tools; the stub titles the session with the prompt's first words.
    assert not title.tools
    updates = shared_events.of_session(session_id, "session.updated")
    assert updates[-1]["properties"]["info"]["title"] == title_for(words)


async def test_tools_ask_permission_and_finish(
    shared_opencode: SharedOpencode, shared_events: EventLog
) -> None:
    with trio.fail_after(TURN_DEADLINE):
        async with shared_opencode.server.client() as client:
            session_id = await new_session(client)
            await prompt(client, session_id, text_part("USE_TOOLS please"))
            asked = await shared_events.wait_for(of_type("permission.asked", session_id))
            request = asked["properties"]
            assert request["permission"] == "bash"
            assert request["patterns"] == ["echo hello-from-tool"]
            response = await client.post(
                f"/permission/{request['id']}/reply", json={"reply": "once"}
            )
            assert response.json() is True
            await shared_events.wait_for(is_idle(session_id))
    todos = shared_events.of_session(session_id, "todo.updated")
    assert todos[-1]["properties"]["todos"] == tool_calls_in("USE_TOOLS")[0].args["todos"]
    tools = {
        e["properties"]["part"]["tool"]: e["properties"]["part"]["state"]
        for e in shared_events.of_session(session_id, "message.part.updated")
        if e["properties"]["part"]["type"] == "tool"
    }
    assert tools["todowrite"]["status"] == "completed"
    assert tools["bash"]["status"] == "completed"
    assert "hello-from-tool" in tools["bash"]["output"]
    assert shared_events.of_session(session_id, "permission.replied")
    assert final_text(shared_events, session_id) == "Finished: tools ran OK."
    assert reply_text(shared_events, session_id) == "Finished: tools ran OK."
    last = await shared_opencode.wait_request(
        lambda r: (
            model_turn("USE_TOOLS please")(r) and r.turn is not None and r.turn.done_tools == 2
        )
    )
    assert last.turn is not None
    assert "hello-from-tool" in last.turn.tool_results[1]


async def test_attached_text_file_reaches_the_model(
    shared_opencode: SharedOpencode, shared_events: EventLog
) -> None:
    data = b"first line\nsecond line\n"
    with trio.fail_after(TURN_DEADLINE):
        async with shared_opencode.server.client() as client:
            session_id = await new_session(client)
            parts = [text_part("ECHO_FILES text"), file_part(data, "text/plain", "notes.txt")]
            await prompt(client, session_id, *parts)
            await shared_events.wait_for(is_idle(session_id))
        request = await shared_opencode.wait_request(model_turn("ECHO_FILES text"))
    assert request.attachments == (Attachment("notes.txt", "text/plain", len(data)),)
    assert data.decode() in request.text()
    expected = f"Received notes.txt (text/plain, {len(data)} bytes)"
    assert final_text(shared_events, session_id) == expected


async def test_question_is_answered_through_the_question_route(
    shared_opencode: SharedOpencode, shared_events: EventLog
) -> None:
    with trio.fail_after(TURN_DEADLINE):
        async with shared_opencode.server.client() as client:
            session_id = await new_session(client)
            await prompt(client, session_id, text_part("ASK_QUESTION"))
            asked = await shared_events.wait_for(of_type("question.asked", session_id))
            question = asked["properties"]
            assert question["questions"] == tool_calls_in("ASK_QUESTION")[0].args["questions"]
            response = await client.post(
                f"/question/{question['id']}/reply", json={"answers": [["Blue"]]}
            )
            assert response.json() is True
            replied = await shared_events.wait_for(of_type("question.replied", session_id))
            await shared_events.wait_for(is_idle(session_id))
    assert replied["properties"]["answers"] == [["Blue"]]
    assert final_text(shared_events, session_id) == "You chose: Blue"


async def test_abort_stops_a_slow_turn(
    shared_opencode: SharedOpencode, shared_events: EventLog
) -> None:
    with trio.fail_after(TURN_DEADLINE):
        async with shared_opencode.server.client() as client:
            session_id = await new_session(client)
            await prompt(client, session_id, text_part("SLOW 200"))
            await shared_events.wait_for(
                lambda e: (
                    of_type("message.part.delta", session_id)(e)
                    and "tick" in e["properties"]["delta"]
                )
            )
            response = await client.post(f"/session/{session_id}/abort")
            assert response.json() is True
            error = await shared_events.wait_for(of_type("session.error", session_id))
            mark = shared_events.events.index(error)
            await shared_events.wait_for(is_idle(session_id), start=mark)
        aborted = await shared_opencode.wait_request(
            lambda r: model_turn("SLOW 200")(r) and r.disconnected
        )
    assert error["properties"]["error"]["name"] == "MessageAbortedError"
    assert not aborted.finished  # OpenCode hung up on the stream: the stub stopped sending


IMAGE_MODEL = {"attachment": True, "modalities": {"input": ["text", "image", "pdf"]}}


@pytest.mark.parametrize(
    "real_opencode",
    [{"extra_config": {"provider": {"stub": {"models": {"stub-model": IMAGE_MODEL}}}}}],
    indirect=True,
    ids=["image-and-pdf-model"],
)
async def test_images_and_pdfs_reach_a_model_that_accepts_them(
    real_opencode: RealOpencode, stub_model: RunningStubModel
) -> None:
    png, pdf = tiny_png(), b"%PDF-1.4\n%%EOF\n"
    with trio.fail_after(TURN_DEADLINE):
        async with real_opencode.client() as client:
            session_id = await new_session(client)
            parts = [
                text_part("ECHO_FILES"),
                file_part(png, "image/png", "pixel.png"),
                file_part(pdf, "application/pdf", "doc.pdf"),
            ]
            await prompt(client, session_id, *parts)
            request = await stub_model.wait_request(model_turn("ECHO_FILES"))
    # An image_url part has no file name; a PDF comes as a file part with its name.
    assert request.attachments == (
        Attachment("image-1", "image/png", len(png)),
        Attachment("doc.pdf", "application/pdf", len(pdf)),
    )


@pytest.mark.parametrize("real_opencode", [{"password": "s3cret"}], indirect=True, ids=["password"])
async def test_password_restart_and_kill(real_opencode: RealOpencode) -> None:
    server = real_opencode
    with trio.fail_after(3 * TURN_DEADLINE):
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            assert (await anonymous.get("/global/health")).status_code == 401
        async with server.client() as client:
            assert (await client.get("/global/health")).status_code == 200
            session_id = await new_session(client)
        first_pid = server.pid
        await server.restart()
        assert server.pid != first_pid
        async with server.client() as client:
            response = await client.get(f"/session/{session_id}")
        assert response.status_code == 200  # the session survived: same HOME, same database
        await server.kill()
        assert not server.running
