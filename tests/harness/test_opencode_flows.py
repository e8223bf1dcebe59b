"""The stand-in's turns against the recorded 1.18.33 traces, in memory, on Trio's mock clock.

Each flow of ``reference/opencode-events-1.18.33.jsonl`` is played on the stand-in and the two
event sequences are compared label by label (type, plus role/part type/tool status/status type).
Left out on both sides: instance noise (``plugin.*`` …), ``session.diff``, heartbeats, file
watcher events, and the server's *summary* re-emissions (``session.updated`` without a title
change, the user message re-sent with ``summary``): the real server computes the summary
concurrently with the loop, so their position varies from run to run (compare trace lines 84/85
with 67/68, or 190 with 172).

Every event produced here is also validated against the openapi ``Event*`` schemas.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from mmthreads.harness.opencode import OpenCodeStandIn, UnknownModel
from mmthreads.harness.opencode.bodies import FilePartInput, TextPartInput
from mmthreads.harness.opencode.wire import AssistantMessage, TextPart, ToolPart, ToolStateError

if TYPE_CHECKING:
    from mmthreads.harness.opencode.state import MessageRecord

REPO = Path(__file__).resolve().parents[2]
PROJ = "/home/dev/proj-a"
NOISE_PREFIXES = ("plugin.", "catalog.", "reference.", "integration.", "file.watcher.")
NOISE = {"session.diff", "server.heartbeat", "server.connected", "project.updated"}


def reference_dir() -> Path:
    candidates = []
    if shared := os.environ.get("MMTHREADS_SHARED_DIR"):
        candidates.append(Path(shared) / "reference")
    candidates.append(REPO.parent / "shared" / "reference")
    for candidate in candidates:
        if (candidate / "opencode-events-1.18.33.jsonl").exists():
            return candidate
    pytest.skip("the shared reference folder is not next to the checkout")


def trace(first: int, last: int) -> list[dict[str, Any]]:
    """Lines ``first``..``last`` (1-based, inclusive) of the recorded ``/event`` trace."""
    lines = (reference_dir() / "opencode-events-1.18.33.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[first - 1 : last]]


def labels(events: list[dict[str, Any]]) -> list[str]:
    """Comparable labels of a sequence of events (see the module docstring)."""
    titles: dict[str, str] = {}
    out: list[str] = []
    for event in events:
        kind, props = event["type"], event["properties"]
        if kind in NOISE or kind.startswith(NOISE_PREFIXES):
            continue
        if kind.startswith("session.") and "info" in props:
            info = props["info"]
            if kind == "session.updated" and titles.get(info["id"]) == info["title"]:
                continue
            titles[info["id"]] = info["title"]
            out.append(kind)
        elif kind == "message.updated":
            info = props["info"]
            if info["role"] == "user":
                if "summary" not in info:
                    out.append("message.updated:user")
                continue
            label = "message.updated:assistant"
            label += "".join(f":{key}" for key in ("finish", "error") if key in info)
            label += ":completed" if "completed" in info["time"] else ""
            out.append(label)
        elif kind == "message.part.updated":
            part = props["part"]
            label = f"part:{part['type']}"
            if part["type"] == "tool":
                label += f":{part['tool']}:{part['state']['status']}"
            elif part["type"] in ("text", "reasoning") and "end" in part.get("time", {}):
                label += ":end"
            out.append(label)
        elif kind == "session.status":
            out.append(f"status:{props['status']['type']}")
        else:
            out.append(kind)
    return out


def payloads(standin: OpenCodeStandIn, since: int = 0) -> list[dict[str, Any]]:
    return [event.payload() for event in standin.events[since:]]


def texts(record: MessageRecord) -> list[str]:
    return [p.text for p in record.parts if isinstance(p, TextPart)]


def tool_parts(standin: OpenCodeStandIn, session_id: str) -> list[ToolPart]:
    records = standin.state.messages[session_id]
    return [p for r in records for p in r.parts if isinstance(p, ToolPart)]


@pytest.fixture
async def standin(nursery: trio.Nursery) -> OpenCodeStandIn:
    running = OpenCodeStandIn(directory=PROJ)
    await nursery.start(running.run)
    return running


# -- the recorded flows ------------------------------------------------------------------------


async def test_simple_prompt_matches_the_trace(standin, autojump_clock):
    start = len(standin.events)
    session = standin.create_session(title="bridge test")
    standin.prompt_nowait(session.id, "Say hello")
    await standin.wait_idle(session.id)
    assert labels(payloads(standin, start)) == labels(trace(2, 41))


async def test_tools_and_permission_match_the_trace(standin, autojump_clock):
    start = len(standin.events)
    session = standin.create_session()
    standin.prompt_nowait(session.id, "USE_TOOLS please")
    request = await standin.wait_permission_asked(session.id)
    assert standin.reply_permission(request.id, "once")
    await standin.wait_idle(session.id)
    ours = payloads(standin, start)
    assert labels(ours) == labels(trace(43, 104))
    titles = [e["properties"]["info"]["title"] for e in ours if e["type"] == "session.updated"]
    assert titles[-1] == "USE_TOOLS please"  # as the stub model titles it for a real server
    assert standin.state.todos[session.id][0].content == "say hello"


async def test_abort_while_streaming_matches_the_trace(standin, autojump_clock):
    start = len(standin.events)
    session = standin.create_session(title="abort")
    job = standin.prompt_nowait(session.id, "SLOW please")
    assert job is not None

    def fifth_delta() -> bool:
        deltas = [e for e in standin.events[start:] if e.type == "message.part.delta"]
        return len(deltas) >= 5

    await standin.signal.wait_until(fifth_delta)
    standin.abort(session.id)
    await job.done.wait()
    assert labels(payloads(standin, start)) == labels(trace(106, 130))
    assert job.result is not None
    assert job.result.info.error is not None
    assert job.result.info.error.name == "MessageAbortedError"


async def test_provider_errors_match_the_trace(standin, autojump_clock):
    start = len(standin.events)
    session = standin.create_session(title="errors")
    first = standin.prompt_nowait(session.id, "FAIL_400 now")
    assert first is not None
    await first.done.wait()
    standin.prompt_nowait(session.id, "FAIL_503 now")
    await standin.wait_event(
        "session.status",
        session_id=session.id,
        since=start,
        where=lambda e: e.properties["status"].get("attempt") == 2,
    )
    standin.abort(session.id)
    await standin.wait_idle(session.id)
    ours = payloads(standin, start)
    assert labels(ours) == labels(trace(131, 162))
    error = next(e for e in ours if e["type"] == "session.error")["properties"]["error"]
    assert error["name"] == "APIError"
    assert error["data"]["statusCode"] == 400
    assert error["data"]["isRetryable"] is False


async def test_write_then_delete_matches_the_trace(standin, autojump_clock):
    start = len(standin.events)
    session = standin.create_session(title="write")
    standin.prompt_nowait(session.id, "WRITE_FILE hello.txt")
    await standin.wait_idle(session.id)
    standin.delete_session(session.id)
    ours = payloads(standin, start)
    assert labels(ours) == labels(trace(163, 204))
    patch = next(
        e
        for e in ours
        if e["type"] == "message.part.updated" and e["properties"]["part"]["type"] == "patch"
    )
    assert patch["properties"]["part"]["files"] == [f"{PROJ}/hello.txt"]
    last_user = [
        e
        for e in ours
        if e["type"] == "message.updated" and e["properties"]["info"]["role"] == "user"
    ][-1]
    diff = last_user["properties"]["info"]["summary"]["diffs"][0]
    assert diff["file"] == "hello.txt"
    assert diff["status"] == "added"
    assert "+written by the agent\n" in diff["patch"]


# -- timing on the mock clock ------------------------------------------------------------------


async def test_retry_status_backs_off_exactly(standin, autojump_clock):
    session = standin.create_session()
    start = len(standin.events)
    t0 = trio.current_time()
    standin.prompt_nowait(session.id, "FAIL_503")
    times = []
    for attempt in (1, 2, 3):
        event = await standin.wait_event(
            "session.status",
            since=start,
            where=lambda e, n=attempt: e.properties["status"].get("attempt") == n,
        )
        times.append(trio.current_time() - t0)
        status = event.properties["status"]
        assert status["message"] == "stub forced error 503"
        assert status["next"] - standin.state.clock_ms() == 2000 * 2 ** (attempt - 1)
    assert times == [0.0, 2.0, 6.0]
    standin.abort(session.id)
    await standin.wait_idle(session.id)
    assert standin.state.statuses(PROJ) == {}


async def test_text_streams_one_delta_per_chunk_delay(standin, autojump_clock):
    session = standin.create_session(title="t")
    start = len(standin.events)
    t0 = trio.current_time()
    await standin.prompt(session.id, "Say hello")
    deltas = [e for e in standin.events[start:] if e.type == "message.part.delta"]
    assert [d.properties["delta"] for d in deltas[1:]] == [
        "Hello ", "from ", "the ", "stub ", "model! ", "You ", "said: ", "Say ", "hello",
    ]  # fmt: skip
    # reasoning (one delta, then one delay), nine chunks 50 ms apart, one delay to close
    assert trio.current_time() - t0 == pytest.approx(0.05 * 10)


# -- permissions -------------------------------------------------------------------------------


async def test_always_approves_the_next_identical_ask(standin, autojump_clock):
    first = standin.create_session()
    standin.prompt_nowait(first.id, "RUN_BASH echo one")
    request = await standin.wait_permission_asked(first.id)
    assert request.always == ["echo *"]
    standin.reply_permission(request.id, "always")
    await standin.wait_idle(first.id)
    second = standin.create_session()
    start = len(standin.events)
    record = await standin.prompt(second.id, "RUN_BASH echo two")
    kinds = [e.type for e in standin.events[start:]]
    assert "permission.asked" not in kinds
    assert texts(record) == ["Ran: echo two"]


async def test_reject_without_message_fails_the_tool_and_stops(standin, autojump_clock):
    session = standin.create_session()
    start = len(standin.events)
    standin.prompt_nowait(session.id, "RUN_BASH rm -rf build")
    request = await standin.wait_permission_asked(session.id)
    standin.reply_permission(request.id, "reject")
    await standin.wait_idle(session.id)
    tools = [
        e.properties["part"]["state"]
        for e in standin.events[start:]
        if e.type == "message.part.updated" and e.properties["part"]["type"] == "tool"
    ]
    assert tools[-1]["status"] == "error"
    assert tools[-1]["error"] == "The user rejected permission to use this specific tool call."
    kinds = labels(payloads(standin, start))
    assert kinds.count("part:step-start") == 1  # no further model call
    assert kinds[-2:] == ["status:idle", "session.idle"]


async def test_reject_with_message_returns_it_to_the_model(standin, autojump_clock):
    session = standin.create_session()
    standin.prompt_nowait(session.id, "RUN_BASH rm -rf build")
    request = await standin.wait_permission_asked(session.id)
    standin.reply_permission(request.id, "reject", "use git clean instead")
    await standin.wait_idle(session.id)
    (tool,) = tool_parts(standin, session.id)
    assert isinstance(tool.state, ToolStateError)
    assert tool.state.error.endswith("with the following feedback: use git clean instead")
    assert texts(standin.state.messages[session.id][-1]) == ["Ran: rm -rf build"]  # went on


async def test_deny_rule_fails_without_asking(autojump_clock):
    standin = OpenCodeStandIn(directory=PROJ, bash_permission="deny")
    async with trio.open_nursery() as nursery:
        await nursery.start(standin.run)
        session = standin.create_session()
        record = await standin.prompt(session.id, "RUN_BASH ls")
        assert not any(e.type == "permission.asked" for e in standin.events)
        (tool,) = tool_parts(standin, session.id)
        assert isinstance(tool.state, ToolStateError)
        assert tool.state.error.startswith("The user has specified a rule")
        assert isinstance(record.info, AssistantMessage)
        assert record.info.finish == "tool-calls"
        nursery.cancel_scope.cancel()


async def test_abort_rejects_the_pending_permission(standin, autojump_clock):
    session = standin.create_session()
    standin.prompt_nowait(session.id, "USE_TOOLS")
    request = await standin.wait_permission_asked(session.id)
    start = len(standin.events)
    standin.abort(session.id)
    await standin.wait_idle(session.id)
    kinds = [e.type for e in standin.events[start:]]
    assert kinds[0] == "permission.replied"
    assert standin.events[start].properties["reply"] == "reject"
    assert standin.pending.permissions_in(PROJ) == []
    assert standin.reply_permission(request.id, "once") is False
    tool = tool_parts(standin, session.id)[-1]
    assert isinstance(tool.state, ToolStateError)
    assert tool.state.error == "Tool execution aborted"


# -- questions ---------------------------------------------------------------------------------


async def test_question_reply(standin, autojump_clock):
    session = standin.create_session()
    standin.prompt_nowait(session.id, "ASK_QUESTION")
    question = await standin.wait_question_asked(session.id)
    assert question.questions[0].options[0].label == "Red"
    assert question.tool is not None
    assert standin.reply_question(question.id, [["Blue"]])
    await standin.wait_idle(session.id)
    replied = await standin.wait_event("question.replied", session_id=session.id)
    assert replied.properties["answers"] == [["Blue"]]
    (text,) = texts(standin.state.messages[session.id][-1])
    assert '"Which colour should the button be?"="Blue"' in text


async def test_question_reject_stops_the_turn(standin, autojump_clock):
    session = standin.create_session()
    standin.prompt_nowait(session.id, "ASK_QUESTION")
    question = await standin.wait_question_asked(session.id)
    assert standin.reject_question(question.id)
    assert standin.reject_question(question.id) is False
    await standin.wait_idle(session.id)
    await standin.wait_event("question.rejected", session_id=session.id)
    (tool,) = tool_parts(standin, session.id)
    assert isinstance(tool.state, ToolStateError)
    assert tool.state.error == "The user dismissed this question"


# -- queueing, models, kill --------------------------------------------------------------------


async def test_a_prompt_while_busy_is_queued_and_abort_drops_it(standin, autojump_clock):
    session = standin.create_session(title="q")
    first = standin.prompt_nowait(session.id, "SLOW 5")
    second = standin.prompt_nowait(session.id, "Say hello")
    assert first is not None
    assert second is not None
    await first.done.wait()
    await second.done.wait()
    idles = [e for e in standin.events if e.type == "session.idle"]
    assert len(idles) == 1  # no idle between the two turns
    assert second.result is not None
    assert second.result.info.parent_id == second.user.info.id

    third = standin.prompt_nowait(session.id, "SLOW 50")
    fourth = standin.prompt_nowait(session.id, "Say hello")
    assert third is not None
    assert fourth is not None
    await standin.wait_event("message.part.delta", since=len(standin.events))
    standin.abort(session.id)
    await fourth.done.wait()
    await standin.wait_idle(session.id)
    infos = [r.info for r in standin.state.messages[session.id]]
    assert fourth.user.info in infos  # the queued prompt stays in history …
    replies = [i for i in infos if isinstance(i, AssistantMessage)]
    assert all(i.parent_id != fourth.user.info.id for i in replies)  # … unanswered


async def test_model_is_sticky_and_unknown_models_fail(standin, autojump_clock):
    session = standin.create_session(title="m")
    await standin.prompt(session.id, "hi", model=("stub", "stub-vision"))
    assert standin.state.session(session.id).model.id == "stub-vision"
    record = await standin.prompt(session.id, "hi again")
    assert record.info.model_id == "stub-vision"
    with pytest.raises(UnknownModel):
        standin.prompt_nowait(session.id, "x", model=("nope", "zzz"))
    error = await standin.wait_event("session.error", session_id=session.id)
    assert error.properties["error"] == {
        "name": "UnknownError",
        "data": {"message": "Model not found: nope/zzz"},
    }


async def test_kill_loses_turns_and_pending_but_keeps_history(standin, autojump_clock):
    session = standin.create_session()
    standin.prompt_nowait(session.id, "USE_TOOLS")
    await standin.wait_permission_asked(session.id)
    start = len(standin.events)
    standin.kill()
    await standin.wait_idle(session.id)
    assert standin.events[start:] == []  # a killed process says nothing
    assert standin.pending.permissions == {}
    assert standin.state.status == {}
    last = standin.state.messages[session.id][-1].info
    assert last.finish is None
    assert last.time.completed is None
    assert standin.state.session(session.id).id == session.id
    # the session still works after the "restart"
    record = await standin.prompt(session.id, "Say hello")
    assert record.info.finish == "stop"


# -- file attachments --------------------------------------------------------------------------


async def test_files_are_stored_and_read(standin, autojump_clock):
    session = standin.create_session(title="f")
    url = "data:text/plain;base64,aGVsbG8K"
    record = await standin.prompt(
        session.id,
        [
            TextPartInput(text="ECHO_FILES"),
            FilePartInput(mime="text/plain", url=url, filename="a.txt"),
        ],
    )
    assert texts(record) == ["Received a.txt (text/plain, 6 bytes)"]
    user = standin.state.messages[session.id][0]
    kinds = [(type(p).__name__, getattr(p, "synthetic", None)) for p in user.parts]
    assert kinds == [
        ("TextPart", None),
        ("TextPart", True),
        ("TextPart", True),
        ("FilePart", None),
    ]


# -- schemas -----------------------------------------------------------------------------------


def _event_schema_name(kind: str) -> str:
    return "Event" + "".join(word[:1].upper() + word[1:] for word in kind.split("."))


async def test_every_event_matches_the_openapi_schemas(standin, autojump_clock):
    jsonschema = pytest.importorskip("jsonschema")
    spec = json.loads((reference_dir() / "opencode-openapi-1.18.33.json").read_text())
    schemas = spec["components"]["schemas"]
    for prompt in ("Say hello", "USE_TOOLS", "ASK_QUESTION", "WRITE_FILE a.txt", "FAIL_400"):
        session = standin.create_session()
        standin.prompt_nowait(session.id, prompt)
        while not standin.is_idle(session.id):
            with trio.move_on_after(1):
                request = await standin.wait_permission_asked(session.id)
                standin.reply_permission(request.id, "once")
            for pending in list(standin.pending.questions.values()):
                standin.reply_question(pending.request.id, [["Red"]])
        standin.archive_session(session.id)
    doomed = standin.create_session(title="x")
    standin.delete_session(doomed.id)
    seen = set()
    for event in standin.events:
        name = _event_schema_name(event.type)
        assert name in schemas, f"no schema for {event.type}"
        schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        jsonschema.validate(event.payload(), schema, cls=jsonschema.Draft202012Validator)
        seen.add(event.type)
    assert {"permission.asked", "question.asked", "todo.updated", "session.error"} <= seen
