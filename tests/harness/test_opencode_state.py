"""The stand-in's sans-IO pieces: ids, sessions, pagination, permission rules, legacy shapes.

Plain synchronous tests: no Trio, a fake millisecond clock.
"""

from __future__ import annotations

import re
from itertools import count

import pytest

from mmthreads.harness.opencode.bodies import TextPartInput
from mmthreads.harness.opencode.ids import IdSource
from mmthreads.harness.opencode.pending import PendingPrompts, PermissionDenied
from mmthreads.harness.opencode.state import OpenCodeState, SessionNotFound, iso
from mmthreads.harness.opencode.tools import bash_output, wildcard_match
from mmthreads.harness.opencode.wire import PermissionRule, ToolRef, UserModel

PROJ = "/home/dev/proj-a"
ID = re.compile(r"^(ses|msg|prt|per|que|evt)_[0-9a-f]{12}[0-9A-Za-z]{14}$")


def make_state(dialect: str = "current", start: int = 1_795_632_866_196) -> OpenCodeState:
    ticks = count(start)
    return OpenCodeState(
        clock_ms=lambda: next(ticks),
        default_directory=PROJ,
        dialect=dialect,  # type: ignore[arg-type]
    )


def make_pending(state: OpenCodeState, bash: str = "ask") -> PendingPrompts:
    rules = [
        PermissionRule(permission="*", pattern="*", action="allow"),
        PermissionRule(permission="bash", pattern="*", action=bash),  # type: ignore[arg-type]
    ]
    return PendingPrompts(state, rules)


def ask(pending: PendingPrompts, session_id: str, command: str):
    session = pending._state.session(session_id)
    return pending.ask_permission(
        session,
        permission="bash",
        patterns=[command],
        metadata={"command": command},
        always=[command.split()[0] + " *"],
        tool=ToolRef(message_id="msg_1", call_id="call_1"),
        title=command,
    )


# -- ids ---------------------------------------------------------------------------------------


def test_ids_sort_like_opencode_ids():
    same_ms = IdSource(lambda: 1_795_632_866_196, seed=1)
    ascending = [same_ms.ascending("msg") for _ in range(5000)]
    assert ascending == sorted(ascending)
    assert all(ID.match(i) for i in ascending[:10])
    sessions = [same_ms.descending("ses") for _ in range(5)]
    assert sessions == sorted(sessions, reverse=True)


def test_session_ids_are_the_complement_of_ascending_ids():
    ids = IdSource(lambda: 1_795_632_866_196)
    up = int(ids.ascending("evt")[4:16], 16)
    down = int(ids.descending("ses")[4:16], 16)
    assert down == ~(up + 1) & (1 << 48) - 1


# -- sessions and messages ---------------------------------------------------------------------


def test_a_new_session_has_the_recorded_shape():
    state = make_state()
    session = state.create_session()
    (event,) = [e for e in state.bus.log if e.type == "session.created"]
    info = event.properties["info"]
    assert set(info) == {
        "id", "slug", "version", "projectID", "directory", "path", "title", "cost", "tokens",
        "time",
    }  # fmt: skip
    assert info["title"] == f"New session - {iso(info['time']['created'])}"
    assert re.fullmatch(r"New session - \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info["title"])
    assert info["path"] == ""
    assert info["tokens"] == {
        "input": 0,
        "output": 0,
        "reasoning": 0,
        "cache": {"read": 0, "write": 0},
    }
    assert event.properties["sessionID"] == session.id
    child = state.create_session(parent_id=session.id)
    assert child.title.startswith("Child session - ")
    assert state.children(session.id) == [child]


def test_delete_removes_children_first_and_lookups_fail_after():
    state = make_state()
    parent = state.create_session(title="p")
    child = state.create_session(title="c", parent_id=parent.id)
    state.delete_session(parent.id)
    deleted = [e.properties["sessionID"] for e in state.bus.log if e.type == "session.deleted"]
    assert deleted == [child.id, parent.id]
    with pytest.raises(SessionNotFound):
        state.session(parent.id)


def test_list_is_scoped_to_the_directory_and_newest_first():
    state = make_state()
    older = state.create_session(PROJ, title="older")
    newer = state.create_session(PROJ, title="newer")
    state.create_session("/home/dev/proj-b", title="elsewhere")
    assert state.list_sessions(PROJ) == [newer, older]
    state.update_session(older.id, title="older, renamed")
    assert state.list_sessions(PROJ)[0] is older
    assert state.list_sessions(PROJ, search="RENAMED") == [older]
    assert state.list_sessions(PROJ, limit=1) == [older]


def test_messages_page_from_the_newest_with_a_cursor():
    state = make_state()
    session = state.create_session(title="t")
    model = UserModel(provider_id="stub", model_id="stub-model")
    for n in range(5):
        state.add_user_message(session, [TextPartInput(text=f"m{n}")], model=model, agent="build")
    page, cursor = state.list_messages(session.id, limit=2)
    assert [r.parts[0].text for r in page] == ["m3", "m4"]  # type: ignore[union-attr]
    assert cursor is not None
    older, cursor2 = state.list_messages(session.id, limit=2, before=cursor)
    assert [r.parts[0].text for r in older] == ["m1", "m2"]  # type: ignore[union-attr]
    rest, last = state.list_messages(session.id, limit=2, before=cursor2)
    assert [r.parts[0].text for r in rest] == ["m0"]  # type: ignore[union-attr]
    assert last is None
    with pytest.raises(ValueError, match="bad cursor"):
        state.list_messages(session.id, before="not-a-cursor")


def test_the_model_is_sticky_and_only_a_change_updates_the_session():
    state = make_state()
    session = state.create_session(title="t")
    model = UserModel(provider_id="stub", model_id="stub-model")
    start = len(state.bus.log)
    state.add_user_message(session, [TextPartInput(text="a")], model=model, agent="build")
    first = [e.type for e in state.bus.log[start:]]
    start = len(state.bus.log)
    state.add_user_message(session, [TextPartInput(text="b")], model=model, agent="build")
    second = [e.type for e in state.bus.log[start:]]
    assert first == [
        "session.updated", "message.updated", "message.part.updated", "session.updated",
    ]  # fmt: skip
    assert second == first[1:]  # trace lines 148-150: no update before the user message
    assert session.model is not None
    assert session.model.variant == "default"


# -- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("*", "anything", True),
        ("echo *", "echo hello-from-tool", True),
        ("echo *", "echoes", False),
        ("git ?tatus", "git status", True),
        ("rm", "rm -rf", False),
        ("a.b", "axb", False),
    ],
)
def test_wildcards(pattern, value, matches):
    assert wildcard_match(pattern, value) is matches


@pytest.mark.parametrize(
    ("bash", "session_rules", "approved", "expected"),
    [
        ("ask", [], [], "ask"),
        ("allow", [], [], "allow"),
        ("deny", [], [], "deny"),
        ("ask", [("bash", "echo *", "allow")], [], "allow"),
        ("allow", [("bash", "echo *", "deny")], [], "deny"),
        ("ask", [], [("bash", "echo *", "allow")], "allow"),
        ("ask", [("bash", "git *", "allow")], [], "ask"),
    ],
)
def test_rules_last_match_wins(bash, session_rules, approved, expected):
    state = make_state()
    pending = make_pending(state, bash)
    rules = [PermissionRule(permission=p, pattern=q, action=a) for p, q, a in session_rules]
    session = state.create_session(permission=rules or None)
    pending.approved[PROJ] = [
        PermissionRule(permission=p, pattern=q, action=a) for p, q, a in approved
    ]
    assert pending.evaluate(session, "bash", "echo hi") == expected


def test_once_resolves_one_request_and_reject_rejects_the_session():
    state = make_state()
    pending = make_pending(state)
    session = state.create_session()
    other = state.create_session()
    first, second = ask(pending, session.id, "ls"), ask(pending, session.id, "pwd")
    elsewhere = ask(pending, other.id, "ls")
    assert first
    assert second
    assert elsewhere
    assert pending.reply_permission(first.request.id, "once")
    assert (first.outcome, second.outcome) == ("once", None)
    assert pending.reply_permission(second.request.id, "reject", "no")
    assert (second.outcome, second.message) == ("reject", "no")
    assert elsewhere.outcome is None
    assert pending.reply_permission(first.request.id, "once") is False
    replied = [e.properties for e in state.bus.log if e.type == "permission.replied"]
    assert replied[0] == {"sessionID": session.id, "requestID": first.request.id, "reply": "once"}


def test_always_approves_for_the_instance_and_resolves_covered_requests():
    state = make_state()
    pending = make_pending(state)
    session = state.create_session()
    first, second = ask(pending, session.id, "echo a"), ask(pending, session.id, "echo b")
    unrelated = ask(pending, session.id, "ls")
    assert first
    assert second
    assert unrelated
    pending.reply_permission(first.request.id, "always")
    assert (first.outcome, second.outcome, unrelated.outcome) == ("always", "always", None)
    later = state.create_session()
    assert ask(pending, later.id, "echo c") is None  # allowed without asking
    assert pending.permissions_in(PROJ) == [unrelated.request]
    pending.forget()  # a restart loses the approval
    assert ask(pending, later.id, "echo c") is not None


def test_deny_raises_with_the_relevant_rules():
    state = make_state()
    pending = make_pending(state, "deny")
    session = state.create_session()
    with pytest.raises(
        PermissionDenied, match=r'"permission":"bash","pattern":"\*","action":"deny"'
    ):
        ask(pending, session.id, "ls")


def test_legacy_permission_events_have_the_old_shapes():
    state = make_state("legacy")
    pending = make_pending(state)
    session = state.create_session()
    request = ask(pending, session.id, "echo hi")
    assert request is not None
    pending.reply_permission(request.request.id, "once")
    updated = next(e for e in state.bus.log if e.type == "permission.updated")
    replied = next(e for e in state.bus.log if e.type == "permission.replied")
    assert "permission.asked" not in {e.type for e in state.bus.log}
    assert set(updated.properties) == {
        "id", "type", "pattern", "sessionID", "messageID", "callID", "title", "metadata", "time",
    }  # fmt: skip
    assert updated.properties["type"] == "bash"
    assert updated.properties["pattern"] == "echo hi"
    assert replied.properties == {
        "sessionID": session.id,
        "permissionID": request.request.id,
        "response": "once",
    }
    assert "id" not in updated.payload()


def test_bash_output_is_simulated():
    assert bash_output("echo hello-from-tool") == "hello-from-tool\n"
    assert bash_output("echo 'two words'") == "two words\n"
    assert bash_output("make test") == "(stand-in) ran: make test\n"
