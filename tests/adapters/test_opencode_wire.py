"""OpenCode wire decoding: the recorded 1.18.33 traces, exact events, both dialects."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mmthreads.core import agent_events as ae
from mmthreads.errors import AgentWireError
from mmthreads.wire.opencode import decode_event, decode_frame, decode_global_event
from mmthreads.wire.opencode_normalise import decode_part, to_provider_catalog
from mmthreads.wire.opencode_rest import ProviderList

REPO = Path(__file__).resolve().parents[2]
S = "http://127.0.0.1:4096"
D = "/home/dev/proj-a"


def reference_dir() -> Path:
    candidates = []
    if shared := os.environ.get("MMTHREADS_SHARED_DIR"):
        candidates.append(Path(shared) / "reference")
    candidates.append(REPO.parent / "shared" / "reference")
    for candidate in candidates:
        if (candidate / "opencode-events-1.18.33.jsonl").exists():
            return candidate
    pytest.skip("the shared reference folder is not next to the checkout")


def trace(name: str) -> list[bytes]:
    return (reference_dir() / name).read_bytes().splitlines()


def line(number: int) -> bytes:
    return trace("opencode-events-1.18.33.jsonl")[number - 1]


def raw(kind: str, props: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "properties": props}).encode()


# --- the recorded traces -----------------------------------------------------------------------


def test_every_event_line_decodes_to_the_expected_mix() -> None:
    kinds = Counter(
        type(e).__name__
        for data in trace("opencode-events-1.18.33.jsonl")
        for e in decode_event(data, server=S, directory=D)
    )
    assert kinds == {
        "PartUpdated": 43,
        "MessageUpdated": 42,
        "SessionStatus": 32,
        "SessionUpserted": 29,
        "PartDelta": 22,
        "SessionIdle": 8,
        "SessionError": 2,
        "TodoUpdated": 1,
        "PermissionAsked": 1,
        "PermissionReplied": 1,
        "SessionDeleted": 1,
    }


def test_every_global_line_decodes_and_sync_and_noise_give_nothing() -> None:
    frames = [
        decode_frame(d, server=S, wrapped=True)
        for d in trace("opencode-global-events-1.18.33.jsonl")
    ]
    assert frames[0].type == "server.connected"
    assert frames[0].directory == ""
    assert frames[0].events == []
    syncs = [f for f in frames if f.type == "sync"]
    assert len(syncs) == 4
    assert all(f.events == [] for f in syncs)
    events = [e for f in frames for e in f.events]
    assert len(events) == 24
    assert {e.directory for e in events} == {"/home/dev/proj-b"}
    assert {e.server for e in events} == {S}
    created = events[0]
    assert isinstance(created, ae.SessionUpserted)
    assert created.created
    assert created.info.title == "proj2"
    deltas = [e for e in events if isinstance(e, ae.PartDelta)]
    assert [d.delta for d in deltas] == ["Thinking about the greeting."]


def test_global_event_equals_event_decoding_with_its_directory() -> None:
    for data in trace("opencode-global-events-1.18.33.jsonl"):
        outer = json.loads(data)
        inner = json.dumps(outer["payload"]).encode()
        expected = decode_event(inner, server=S, directory=outer.get("directory", ""))
        if outer["payload"]["type"] == "sync":
            expected = []
        assert decode_global_event(data, server=S) == expected


def test_a_text_delta() -> None:
    assert decode_event(line(23), server=S, directory=D) == [
        ae.PartDelta(
            server=S,
            directory=D,
            session_id="ses_debf0dc6cffeaBW580UWBNBmMh",
            message_id="msg_2140f241c0018YcXUWdlf4g8kw",
            part_id="prt_2140f2704001MpJA4TfKLQsooB",
            field="text",
            delta="Hello ",
        )
    ]


def test_the_deltas_of_a_part_add_up_to_its_final_snapshot() -> None:
    events = [e for n in range(20, 33) for e in decode_event(line(n), server=S, directory=D)]
    part_id = "prt_2140f2704001MpJA4TfKLQsooB"
    text = "".join(e.delta for e in events if isinstance(e, ae.PartDelta) and e.part_id == part_id)
    final = [e.part for e in events if isinstance(e, ae.PartUpdated) and e.part.part_id == part_id][
        -1
    ]
    assert isinstance(final, ae.TextPart)
    assert text == final.text == "Hello from the stub model! You said: Say hello"


def test_a_completed_tool_part() -> None:
    assert decode_event(line(76), server=S, directory=D) == [
        ae.PartUpdated(
            server=S,
            directory=D,
            session_id="ses_debf0b594ffemW7usdkp7FGj5H",
            part=ae.ToolPart(
                part_id="prt_2140f4cea001bUvUgFV3ai76lJ",
                message_id="msg_2140f4c82001o3OzOPxFpGMeD2",
                tool="bash",
                call_id="call_stub_1795632876777",
                status="completed",
                title="echo hello-from-tool",
                input={"command": "echo hello-from-tool", "description": "Echo a greeting"},
                output="hello-from-tool\n",
                start_ms=1795632876882,
                end_ms=1795632877233,
            ),
        )
    ]


def test_a_permission_asked() -> None:
    assert decode_event(line(72), server=S, directory=D) == [
        ae.PermissionAsked(
            server=S,
            directory=D,
            request_id="per_2140f4d7a001ptapifse82gVqc",
            session_id="ses_debf0b594ffemW7usdkp7FGj5H",
            permission="bash",
            patterns=("echo hello-from-tool",),
            always=("echo *",),
            metadata={"command": "echo hello-from-tool"},
            message_id="msg_2140f4c82001o3OzOPxFpGMeD2",
            call_id="call_stub_1795632876777",
        )
    ]


def test_a_todo_list() -> None:
    assert decode_event(line(56), server=S, directory=D) == [
        ae.TodoUpdated(
            server=S,
            directory=D,
            session_id="ses_debf0b594ffemW7usdkp7FGj5H",
            todos=(
                ae.Todo(content="say hello", status="in_progress", priority="high"),
                ae.Todo(content="run echo", status="pending", priority="low"),
            ),
        )
    ]


def test_a_provider_error() -> None:
    assert decode_event(line(142), server=S, directory=D) == [
        ae.SessionError(
            server=S,
            directory=D,
            session_id="ses_debf02ce4ffeyNJamFzefRHjac",
            name="APIError",
            message="stub forced error 400",
        )
    ]


def test_a_retry_status() -> None:
    assert decode_event(line(157), server=S, directory=D) == [
        ae.SessionStatus(
            server=S,
            directory=D,
            session_id="ses_debf02ce4ffeyNJamFzefRHjac",
            status="retry",
            attempt=1,
            message="stub forced error 503",
            next_ms=1795632913830,
        )
    ]


def test_a_finished_assistant_message_and_step() -> None:
    [message] = decode_event(line(35), server=S, directory=D)
    assert isinstance(message, ae.MessageUpdated)
    assert message.role == "assistant"
    assert message.finish == "stop"
    assert message.completed_ms == 1795632867716
    assert message.tokens == ae.Tokens(input=42, output=7)
    assert (message.provider_id, message.model_id) == ("stub", "stub-model")
    [step] = decode_event(line(33), server=S, directory=D)
    assert isinstance(step, ae.PartUpdated)
    assert step.part == ae.StepFinishPart(
        part_id="prt_2140f2971001H705sb01X2pCHp",
        message_id="msg_2140f241c0018YcXUWdlf4g8kw",
        reason="stop",
        tokens=ae.Tokens(input=42, output=7),
    )


def test_a_patch_part_and_the_deletion() -> None:
    [patch] = decode_event(line(182), server=S, directory=D)
    assert isinstance(patch, ae.PartUpdated)
    assert patch.part == ae.PatchPart(
        part_id="prt_2141007e5001s06V3BpfZHn0NX",
        message_id="msg_214100632001FqHwJi3IOt3EY1",
        files=("/home/dev/proj-a/hello.txt",),
    )
    assert decode_event(line(204), server=S, directory=D) == [
        ae.SessionDeleted(server=S, directory=D, session_id="ses_debeffa4dffepmytvHSMuedmp5")
    ]


def test_a_session_event_takes_the_sessions_directory_when_the_stream_names_none() -> None:
    [created] = decode_event(line(2), server=S)
    assert created == ae.SessionUpserted(
        server=S,
        directory="/home/dev/proj-a",
        created=True,
        info=ae.SessionInfo(
            session_id="ses_debf0dc6cffeaBW580UWBNBmMh",
            directory="/home/dev/proj-a",
            title="bridge test",
            created_ms=1795632866196,
            updated_ms=1795632866196,
        ),
    )


# --- the older dialect -------------------------------------------------------------------------

SID = "ses_1"
MID = "msg_1"
PID = "prt_1"
SESSION = {
    "id": SID,
    "slug": "s",
    "version": "1.0.150",
    "projectID": "p",
    "directory": D,
    "title": "t",
    "time": {"created": 1, "updated": 2, "archived": 3.0},
}
PART = {"id": PID, "sessionID": SID, "messageID": MID, "type": "text", "text": "Hello world"}


@pytest.mark.parametrize(
    ("legacy", "current"),
    [
        pytest.param(
            [raw("session.created", {"info": SESSION})],
            [raw("session.created", {"sessionID": SID, "info": SESSION})],
            id="session.created",
        ),
        pytest.param(
            [raw("session.deleted", {"info": SESSION})],
            [raw("session.deleted", {"sessionID": SID, "info": SESSION})],
            id="session.deleted",
        ),
        pytest.param(
            [
                raw(
                    "message.updated",
                    {"info": {"id": MID, "sessionID": SID, "role": "user", "time": {"created": 5}}},
                )
            ],
            [
                raw(
                    "message.updated",
                    {
                        "sessionID": SID,
                        "info": {
                            "id": MID,
                            "sessionID": SID,
                            "role": "user",
                            "time": {"created": 5},
                        },
                    },
                )
            ],
            id="message.updated",
        ),
        pytest.param(
            [raw("message.part.updated", {"part": PART, "delta": "world"})],
            [
                raw(
                    "message.part.delta",
                    {
                        "sessionID": SID,
                        "messageID": MID,
                        "partID": PID,
                        "field": "text",
                        "delta": "world",
                    },
                ),
                raw("message.part.updated", {"sessionID": SID, "part": PART, "time": 9}),
            ],
            id="delta-inside-part-updated",
        ),
        pytest.param(
            [
                raw(
                    "permission.updated",
                    {
                        "id": "per_1",
                        "type": "bash",
                        "pattern": "echo hi",
                        "sessionID": SID,
                        "messageID": MID,
                        "callID": "call_1",
                        "title": "echo hi",
                        "metadata": {"command": "echo hi"},
                        "time": {"created": 7},
                    },
                )
            ],
            [
                raw(
                    "permission.asked",
                    {
                        "id": "per_1",
                        "sessionID": SID,
                        "permission": "bash",
                        "patterns": ["echo hi"],
                        "metadata": {"command": "echo hi"},
                        "always": [],
                        "tool": {"messageID": MID, "callID": "call_1"},
                    },
                )
            ],
            id="permission.updated",
        ),
        pytest.param(
            [
                raw(
                    "permission.replied",
                    {"sessionID": SID, "permissionID": "per_1", "response": "once"},
                )
            ],
            [raw("permission.replied", {"sessionID": SID, "requestID": "per_1", "reply": "once"})],
            id="permission.replied",
        ),
    ],
)
def test_legacy_frames_mean_what_current_frames_mean(
    legacy: list[bytes], current: list[bytes]
) -> None:
    old = [e for data in legacy for e in decode_event(data, server=S, directory=D)]
    new = [e for data in current for e in decode_event(data, server=S, directory=D)]
    if old and isinstance(old[0], ae.PermissionAsked):
        # The legacy shape has a human title the current one lacks; the rest is the same.
        assert old[0].title == "echo hi"
        old = [ae.PermissionAsked(**{**_fields(old[0]), "title": ""})]
    assert old == new
    assert old


def _fields(event: ae.PermissionAsked) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


def test_a_legacy_pattern_list_and_an_archived_session() -> None:
    [asked] = decode_event(
        raw(
            "permission.updated",
            {"id": "per_2", "type": "edit", "pattern": ["a.py", "b.py"], "sessionID": SID},
        ),
        server=S,
    )
    assert isinstance(asked, ae.PermissionAsked)
    assert asked.patterns == ("a.py", "b.py")
    assert asked.permission == "edit"
    [updated] = decode_event(raw("session.updated", {"info": SESSION}), server=S)
    assert isinstance(updated, ae.SessionUpserted)
    assert updated.info.archived_ms == 3
    assert not updated.created


def test_questions_and_their_answers() -> None:
    asked = raw(
        "question.asked",
        {
            "id": "que_1",
            "sessionID": SID,
            "questions": [
                {
                    "question": "Colour?",
                    "header": "Colour",
                    "options": [{"label": "Red", "description": "warm"}],
                }
            ],
            "tool": {"messageID": MID, "callID": "call_q"},
        },
    )
    assert decode_event(asked, server=S, directory=D) == [
        ae.QuestionAsked(
            server=S,
            directory=D,
            request_id="que_1",
            session_id=SID,
            questions=(
                ae.Question(
                    question="Colour?",
                    header="Colour",
                    options=(ae.QuestionOption(label="Red", description="warm"),),
                ),
            ),
            message_id=MID,
            call_id="call_q",
        )
    ]
    replied = raw(
        "question.replied", {"sessionID": SID, "requestID": "que_1", "answers": [["Red"]]}
    )
    rejected = raw("question.rejected", {"sessionID": SID, "requestID": "que_1"})
    assert decode_event(replied, server=S) == [
        ae.QuestionResolved(server=S, request_id="que_1", session_id=SID, answers=(("Red",),))
    ]
    assert decode_event(rejected, server=S) == [
        ae.QuestionResolved(server=S, request_id="que_1", session_id=SID, rejected=True)
    ]


def test_a_session_error_without_a_session() -> None:
    data = raw("session.error", {"error": {"name": "UnknownError", "data": {"message": "boom"}}})
    assert decode_event(data, server=S) == [
        ae.SessionError(server=S, session_id="", name="UnknownError", message="boom")
    ]


# --- what does not decode ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"properties": {}}',
        b'{"type": "session.idle", "properties": {}}',
        b'{"type": "message.part.delta", "properties": {"sessionID": 3}}',
        b'{"type": "permission.replied", "properties": {"sessionID": "s", "reply": "once"}}',
    ],
)
def test_malformed_frames_raise_a_wire_error(data: bytes) -> None:
    with pytest.raises(AgentWireError):
        decode_event(data, server=S)


def test_a_malformed_global_envelope_raises_a_wire_error() -> None:
    with pytest.raises(AgentWireError):
        decode_global_event(b'{"directory": "/x"}', server=S)


@pytest.mark.parametrize(
    "kind", ["plugin.added", "session.next.text.delta", "permission.v2.asked", "tui.toast.show"]
)
def test_unknown_and_unused_kinds_give_nothing(kind: str) -> None:
    assert decode_event(raw(kind, {"anything": [1, 2]}), server=S) == []


def test_unknown_fields_and_part_kinds_are_tolerated() -> None:
    _sid, part = decode_part(
        msgspec.json.encode(
            {"id": "p", "messageID": "m", "type": "snapshot", "snapshot": "abc", "new": 1}
        )
    )
    assert part == ae.OtherPart(part_id="p", message_id="m", type="snapshot")
    _sid, file = decode_part(
        msgspec.json.encode(
            {"id": "p", "messageID": "m", "type": "file", "mime": "image/png", "url": "data:"}
        )
    )
    assert file == ae.FilePart(part_id="p", message_id="m", mime="image/png", url="data:")


def test_the_provider_catalogue_keeps_connected_providers_and_capabilities() -> None:
    caps = {
        "attachment": True,
        "toolcall": True,
        "input": {"text": True, "image": True, "pdf": False},
    }
    body = {
        "all": [
            {"id": "stub", "name": "Stub", "models": {"v": {"id": "v", "capabilities": caps}}},
            {"id": "other", "name": "Other", "models": {"x": {"id": "x"}}},
        ],
        "default": {"stub": "v", "other": "x"},
        "connected": ["stub"],
    }
    catalog = to_provider_catalog(msgspec.json.decode(json.dumps(body), type=ProviderList))
    assert catalog.connected == ("stub",)
    [model] = catalog.models
    assert (model.provider_id, model.model_id, model.image_input, model.pdf_input) == (
        "stub",
        "v",
        True,
        False,
    )
    assert catalog.default_model() == ("stub", "v")
    assert catalog.find("other", "x") is None


def test_files_a_completed_tool_returned_are_its_attachments() -> None:
    frame = json.loads(line(76))
    frame["properties"]["part"]["state"]["attachments"] = [
        {
            "id": "prt_att",
            "sessionID": "ses_debf0b594ffemW7usdkp7FGj5H",
            "messageID": "msg_2140f4c82001o3OzOPxFpGMeD2",
            "type": "file",
            "mime": "image/png",
            "url": "data:image/png;base64,iVBORw0KGgo=",
            "filename": "chart.png",
        }
    ]
    [event] = decode_event(json.dumps(frame).encode(), server=S, directory=D)
    assert isinstance(event, ae.PartUpdated)
    assert isinstance(event.part, ae.ToolPart)
    assert event.part.attachments == (
        ae.FilePart(
            part_id="prt_att",
            message_id="msg_2140f4c82001o3OzOPxFpGMeD2",
            mime="image/png",
            url="data:image/png;base64,iVBORw0KGgo=",
            filename="chart.png",
        ),
    )
