"""TurnView: one assistant turn fed with agent events, rendered as the thread's answer post.

The recorded flows of ``reference/opencode-events-1.18.33.jsonl`` are decoded here with plain
``json`` into the normalised events (a small stand-in for the adapter), replayed in order and
compared with the exact markdown; synthetic sequences cover what the recording does not show.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmthreads.core.agent_events import (
    AgentEvent,
    FilePart,
    MessageUpdated,
    OtherPart,
    PartDelta,
    PartUpdated,
    PatchPart,
    PermissionAsked,
    PermissionReplied,
    Question,
    QuestionAsked,
    ReasoningPart,
    SessionError,
    SessionIdle,
    SessionStatus,
    StepFinishPart,
    StepStartPart,
    TextPart,
    Todo,
    TodoUpdated,
    Tokens,
    ToolPart,
)
from mmthreads.core.splitter import plan_split
from mmthreads.core.turn import TurnView
from mmthreads.core.turn_render import WORKING, fence_closer, format_duration

REPO = Path(__file__).resolve().parents[2]
SES = "ses_test"
START = 1_000_000


# --- the recorded trace, decoded with plain json ----------------------------------------------


def reference_trace() -> Path:
    candidates = []
    if shared := os.environ.get("MMTHREADS_SHARED_DIR"):
        candidates.append(Path(shared) / "reference")
    candidates.append(REPO.parent / "shared" / "reference")
    for candidate in candidates:
        if (path := candidate / "opencode-events-1.18.33.jsonl").exists():
            return path
    pytest.skip("the shared reference folder is not next to the checkout")


def _tokens(raw: dict[str, Any] | None) -> Tokens:
    raw = raw or {}
    cache = raw.get("cache") or {}
    return Tokens(
        input=raw.get("input", 0),
        output=raw.get("output", 0),
        reasoning=raw.get("reasoning", 0),
        cache_read=cache.get("read", 0),
        cache_write=cache.get("write", 0),
    )


def _part(raw: dict[str, Any]) -> Any:
    ids = {"part_id": raw["id"], "message_id": raw["messageID"]}
    kind = raw["type"]
    if kind == "text":
        return TextPart(**ids, text=raw.get("text", ""), synthetic=bool(raw.get("synthetic")))
    if kind == "reasoning":
        return ReasoningPart(**ids, text=raw.get("text", ""))
    if kind == "tool":
        state, times = raw["state"], raw["state"].get("time") or {}
        return ToolPart(
            **ids,
            tool=raw["tool"],
            call_id=raw["callID"],
            status=state["status"],
            title=state.get("title", ""),
            input=state.get("input") or {},
            output=state.get("output", ""),
            error=state.get("error", ""),
            start_ms=times.get("start"),
            end_ms=times.get("end"),
        )
    if kind == "step-start":
        return StepStartPart(**ids)
    if kind == "step-finish":
        return StepFinishPart(
            **ids, reason=raw["reason"], cost=raw["cost"], tokens=_tokens(raw["tokens"])
        )
    if kind == "patch":
        return PatchPart(**ids, files=tuple(raw["files"]))
    return OtherPart(**ids, type=kind)


def decode(frame: dict[str, Any]) -> AgentEvent | None:
    """The normalised event for one ``/event`` frame, or None for kinds a turn never sees."""
    kind, props = frame["type"], frame["properties"]
    if kind == "message.updated":
        info, error = props["info"], props["info"].get("error") or {}
        return MessageUpdated(
            session_id=props["sessionID"],
            message_id=info["id"],
            role=info["role"],
            created_ms=info["time"]["created"],
            completed_ms=info["time"].get("completed"),
            finish=info.get("finish", ""),
            cost=info.get("cost", 0.0),
            tokens=_tokens(info.get("tokens")),
            error_name=error.get("name", ""),
            error_message=(error.get("data") or {}).get("message", ""),
        )
    if kind == "message.part.updated":
        return PartUpdated(session_id=props["sessionID"], part=_part(props["part"]))
    if kind == "message.part.delta":
        return PartDelta(
            session_id=props["sessionID"],
            message_id=props["messageID"],
            part_id=props["partID"],
            field=props["field"],
            delta=props["delta"],
        )
    if kind == "todo.updated":
        todos = tuple(Todo(**todo) for todo in props["todos"])
        return TodoUpdated(session_id=props["sessionID"], todos=todos)
    if kind == "session.status":
        status = props["status"]
        return SessionStatus(
            session_id=props["sessionID"],
            status=status["type"],
            attempt=status.get("attempt", 0),
            message=status.get("message", ""),
            next_ms=status.get("next"),
        )
    if kind == "session.idle":
        return SessionIdle(session_id=props["sessionID"])
    if kind == "session.error":
        error = props["error"]
        return SessionError(
            session_id=props["sessionID"], name=error["name"], message=error["data"]["message"]
        )
    if kind == "permission.asked":
        return PermissionAsked(
            request_id=props["id"],
            session_id=props["sessionID"],
            permission=props["permission"],
            call_id=props["tool"]["callID"],
        )
    if kind == "permission.replied":
        return PermissionReplied(
            request_id=props["requestID"], session_id=props["sessionID"], reply=props["reply"]
        )
    return None


def _latest_time(value: Any) -> int:
    """The largest epoch-ms time in a frame (``time``, ``created``, ``start``, …), or 0."""
    if isinstance(value, dict):
        found = [
            v
            if k in {"time", "created", "completed", "start", "end"} and isinstance(v, int)
            else _latest_time(v)
            for k, v in value.items()
        ]
        return max(found, default=0)
    if isinstance(value, list):
        return max((_latest_time(v) for v in value), default=0)
    return 0


def replay(first: int, last: int, session: str, started: int) -> TurnView:
    """Trace lines ``first``..``last`` fed to a new view; the clock is the latest time seen."""
    view, now = TurnView(session, started_ms=started), started
    for line in reference_trace().read_text().splitlines()[first - 1 : last]:
        frame = json.loads(line)
        now = max(now, _latest_time(frame["properties"]))
        if (event := decode(frame)) is not None:
            view.apply(event, now)
    return view


DONE_42 = "tokens: 42 in, 7 out, 0 reasoning, 0 cache read, 0 cache write"
FLOWS = [
    pytest.param(
        (2, 41, "ses_debf0dc6cffeaBW580UWBNBmMh", 1795632866314),
        "> :thought_balloon: _Thinking about the greeting._\n\n"
        "Hello from the stub model! You said: Say hello\n\n"
        f":checkered_flag: **Done** in 1.4s · $0.0000 · {DONE_42}",
        "Hello from the stub model! You said: Say hello",
        id="simple prompt",
    ),
    pytest.param(
        (43, 104, "ses_debf0b594ffemW7usdkp7FGj5H", 1795632876231),
        "> :thought_balloon: _All tools done._\n\n"
        "Finished: tools ran OK.\n\n"
        ":heavy_check_mark: **todowrite** 2 todos (3ms)\n"
        ":heavy_check_mark: **bash** `echo hello-from-tool` (351ms)\n\n"
        "**Todo** (0/2 done)\n"
        "- [ ] say hello _(in progress)_\n"
        "- [ ] run echo\n\n"
        ":checkered_flag: **Done** in 1.6s · $0.0000 · "
        "tokens: 126 in, 21 out, 0 reasoning, 0 cache read, 0 cache write",
        "Finished: tools ran OK.",
        id="tools with a permission",
    ),
    pytest.param(
        (106, 130, "ses_debf05390ffee9UU65roLLrqlg", 1795632901332),
        "tick tick tick tick tick \n\n:octagonal_sign: Stopped after 77ms.",
        "tick tick tick tick tick ",
        id="abort while streaming",
    ),
    pytest.param(
        (131, 147, "ses_debf02ce4ffeyNJamFzefRHjac", 1795632911228),
        ":no_entry: **APIError** after 8ms: stub forced error 400",
        "",
        id="provider 400",
    ),
    pytest.param(
        (148, 162, "ses_debf02ce4ffeyNJamFzefRHjac", 1795632911319),
        ":warning: Model request failed; retry 2: stub forced error 503\n\n"
        ":checkered_flag: **Done** in 6.1s · $0.0000 · "
        "tokens: 0 in, 0 out, 0 reasoning, 0 cache read, 0 cache write",
        "",
        id="503 retries then abort",
    ),
    pytest.param(
        (163, 203, "ses_debeffa4dffepmytvHSMuedmp5", 1795632924203),
        "File written.\n\n"
        ":heavy_check_mark: **write** `/home/dev/proj-a/hello.txt` (8ms)\n\n"
        ":checkered_flag: **Done** in 833ms · $0.0000 · "
        "tokens: 84 in, 14 out, 0 reasoning, 0 cache read, 0 cache write",
        "File written.",
        id="write tool with a patch",
    ),
]


@pytest.mark.parametrize(("flow", "markdown", "text"), FLOWS)
def test_recorded_flow_renders_exactly(
    flow: tuple[int, int, str, int], markdown: str, text: str
) -> None:
    view = replay(*flow)
    assert view.is_finished
    assert view.markdown() == markdown
    assert view.render(16383) == [markdown]
    assert view.text_only() == text


def test_recorded_flows_ignore_other_sessions() -> None:
    # Lines 2-130 hold three sessions; a view of the second sees only its own turn.
    view = replay(2, 130, "ses_debf0b594ffemW7usdkp7FGj5H", 1795632876231)
    assert view.text_only() == "Finished: tools ran OK."
    assert "tick" not in view.markdown()
    assert "Hello from the stub model" not in view.markdown()


# --- synthetic turns ----------------------------------------------------------------------------

USER, STEP1, STEP2 = "msg_01user", "msg_02step", "msg_03step"
BUSY = SessionStatus(session_id=SES, status="busy")
IDLE = SessionIdle(session_id=SES)


def text(part: str, message: str, value: str, *, synthetic: bool = False) -> PartUpdated:
    snapshot = TextPart(part_id=part, message_id=message, text=value, synthetic=synthetic)
    return PartUpdated(session_id=SES, part=snapshot)


def delta(part: str, message: str, value: str) -> PartDelta:
    return PartDelta(session_id=SES, message_id=message, part_id=part, field="text", delta=value)


def reasoning(part: str, message: str, value: str) -> PartUpdated:
    return PartUpdated(
        session_id=SES, part=ReasoningPart(part_id=part, message_id=message, text=value)
    )


def tool(part: str, name: str, status: Any, **fields: Any) -> PartUpdated:
    snapshot = ToolPart(
        part_id=part, message_id=STEP1, tool=name, call_id=f"call_{part}", status=status, **fields
    )
    return PartUpdated(session_id=SES, part=snapshot)


def message(message_id: str, role: Any = "assistant", **fields: Any) -> MessageUpdated:
    return MessageUpdated(session_id=SES, message_id=message_id, role=role, **fields)


def step_finish(part: str, message_id: str, cost: float, tokens: Tokens) -> PartUpdated:
    finish = StepFinishPart(part_id=part, message_id=message_id, cost=cost, tokens=tokens)
    return PartUpdated(session_id=SES, part=finish)


def play(*events: AgentEvent) -> TurnView:
    """A view fed ``events``, the n-th one at ``START + 100 * n`` ms."""
    view = TurnView(SES, started_ms=START)
    for n, event in enumerate(events, start=1):
        view.apply(event, START + 100 * n)
    return view


TOKENS = Tokens(input=100, output=20, reasoning=5, cache_read=3, cache_write=1)
RUNNING_BASH = tool("prt_7", "bash", "running", input={"command": "ls -la"})
CASES = [
    pytest.param([], WORKING, id="nothing yet"),
    pytest.param([IDLE], WORKING, id="an idle before the turn started is the previous turn's"),
    pytest.param(
        [delta("prt_1", STEP1, "Hel"), delta("prt_1", STEP1, "lo")],
        "Hello",
        id="a delta for an unknown part creates it",
    ),
    pytest.param(
        [text("prt_1", STEP1, ""), delta("prt_1", STEP1, "Helo"), text("prt_1", STEP1, "Hello")],
        "Hello",
        id="a snapshot replaces the deltas",
    ),
    pytest.param(
        [text("prt_1", STEP1, "file body", synthetic=True), text("prt_2", STEP1, "Answer")],
        "Answer",
        id="synthetic text is left out",
    ),
    pytest.param(
        [text("prt_0", USER, "my prompt"), message(USER, "user"), text("prt_1", STEP1, "Answer")],
        "Answer",
        id="the prompt's parts are hidden, even when its role comes late",
    ),
    pytest.param(
        [
            text("prt_3", STEP2, "Second"),
            text("prt_2", STEP1, "First b"),
            text("prt_1", STEP1, "First a"),
        ],
        "First a\n\nFirst b\n\nSecond",
        id="parts in id order across steps",
    ),
    pytest.param(
        [text("prt_1", STEP1, "```python\nprint(1)"), RUNNING_BASH],
        "```python\nprint(1)\n```\n\n:arrows_counterclockwise: **bash** `ls -la`",
        id="a fence left open by streaming text is closed before the lines below",
    ),
    pytest.param(
        [reasoning("prt_1", STEP1, "Let me think")],
        ":thought_balloon: _thinking…_",
        id="reasoning while it streams",
    ),
    pytest.param(
        [reasoning("prt_1", STEP1, "Let me *think*\nabout it"), text("prt_2", STEP1, "Done.")],
        "> :thought_balloon: _Let me \\*think\\* about it_\n\nDone.",
        id="reasoning once done: one escaped italic line",
    ),
    pytest.param(
        [reasoning("prt_1", STEP1, "word " * 60 + "end."), text("prt_2", STEP1, "x")],
        "> :thought_balloon: _…" + "word " * 39 + "end._\n\nx",
        id="long reasoning: its last 200 characters from a word start",
    ),
    pytest.param(
        [tool("prt_1", "bash", "pending")], ":hourglass_flowing_sand: **bash**", id="tool pending"
    ),
    pytest.param(
        [
            RUNNING_BASH,
            PermissionAsked(
                request_id="per_1", session_id=SES, permission="bash", call_id="call_prt_7"
            ),
        ],
        ":arrows_counterclockwise: **bash** `ls -la` · _waiting for approval_",
        id="tool waiting for a permission",
    ),
    pytest.param(
        [
            RUNNING_BASH,
            PermissionAsked(
                request_id="per_1", session_id=SES, permission="bash", call_id="call_prt_7"
            ),
            PermissionReplied(request_id="per_1", session_id=SES, reply="once"),
        ],
        ":arrows_counterclockwise: **bash** `ls -la`",
        id="permission answered",
    ),
    pytest.param(
        [
            tool(
                "prt_1",
                "read",
                "completed",
                input={"filePath": "/src/app.py"},
                title="src/app.py",
                start_ms=10,
                end_ms=130,
            ),
            tool(
                "prt_2",
                "edit",
                "error",
                input={"filePath": "/src/app.py"},
                error="oldString\nnot found",
                start_ms=0,
                end_ms=1500,
            ),
            tool(
                "prt_3", "mcp_search", "completed", title="Search *docs*", start_ms=0, end_ms=61_000
            ),
        ],
        ":heavy_check_mark: **read** `/src/app.py` (120ms)\n"
        ":no_entry: **edit** `/src/app.py` (1.5s): oldString not found\n"
        ":heavy_check_mark: **mcp\\_search** Search \\*docs\\* (1m 1s)",
        id="tool lines: key input or title, duration, error",
    ),
    pytest.param(
        [
            PartUpdated(
                session_id=SES,
                part=FilePart(
                    part_id="prt_1",
                    message_id=STEP1,
                    mime="application/pdf",
                    url="data:application/pdf;base64,AA==",
                    filename="report.pdf",
                ),
            )
        ],
        ":paperclip: report.pdf (application/pdf)",
        id="a produced file",
    ),
    pytest.param(
        [
            TodoUpdated(
                session_id=SES,
                todos=(
                    Todo(content="plan", status="completed"),
                    Todo(content="code", status="in_progress"),
                    Todo(content="test", status="pending"),
                    Todo(content="golf", status="cancelled"),
                ),
            )
        ],
        "**Todo** (1/4 done)\n- [x] plan\n- [ ] code _(in progress)_\n- [ ] test\n"
        "- [ ] ~~golf~~ _(cancelled)_",
        id="the todo list",
    ),
    pytest.param(
        [SessionStatus(session_id=SES, status="retry", attempt=1, message="overloaded")],
        ":warning: Model request failed; retry 1: overloaded",
        id="a retry",
    ),
    pytest.param(
        [
            SessionStatus(session_id=SES, status="retry", attempt=1, message="overloaded"),
            BUSY,
            delta("prt_1", STEP1, "Back"),
        ],
        "Back",
        id="the retry line goes once output flows again",
    ),
    pytest.param(
        [
            BUSY,
            message(STEP1, cost=0.0123, tokens=TOKENS),
            step_finish("prt_8", STEP1, 0.5, TOKENS),
            message(STEP2),
            step_finish("prt_9", STEP2, 0.0047, TOKENS),
            IDLE,
            IDLE,
        ],
        ":checkered_flag: **Done** in 600ms · $0.0170 · tokens: "
        "200 in, 40 out, 10 reasoning, 6 cache read, 2 cache write",
        id="totals: message totals, else its steps; never both",
    ),
    pytest.param(
        [
            BUSY,
            text("prt_1", STEP1, "partial"),
            SessionError(session_id=SES, name="MessageAbortedError", message="Aborted"),
            IDLE,
        ],
        "partial\n\n:octagonal_sign: Stopped after 400ms.",
        id="stopped",
    ),
    pytest.param(
        [
            BUSY,
            SessionError(
                session_id=SES, name="ProviderAuthError", message="bad key\nfor *anthropic*"
            ),
        ],
        ":no_entry: **ProviderAuthError** after 200ms: bad key for \\*anthropic\\*",
        id="an error shows at once, plainly",
    ),
    pytest.param(
        [BUSY, message(STEP1, error_name="APIError", error_message="quota"), IDLE],
        ":no_entry: **APIError** after 300ms: quota",
        id="an error known only from the failed message",
    ),
    pytest.param(
        [BUSY, IDLE, text("prt_1", STEP2, "next run"), message(STEP2)],
        ":checkered_flag: **Done** in 200ms · $0.0000 · tokens: "
        "0 in, 0 out, 0 reasoning, 0 cache read, 0 cache write",
        id="after the end, news of new messages belongs to another turn",
    ),
    pytest.param(
        [text("prt_1", STEP1, "tick "), IDLE, text("prt_1", STEP1, "tick tock")],
        "tick tock\n\n:checkered_flag: **Done** in 200ms · $0.0000 · tokens: "
        "0 in, 0 out, 0 reasoning, 0 cache read, 0 cache write",
        id="after the end, a known part's final snapshot still lands",
    ),
]


QUESTION = QuestionAsked(
    request_id="que_1", session_id=SES, questions=(Question(question="Which?"),), call_id="call_q"
)
CASES.append(
    pytest.param(
        [
            PartUpdated(
                session_id=SES,
                part=ToolPart(
                    part_id="prt_1",
                    message_id=STEP1,
                    tool="question",
                    call_id="call_q",
                    status="running",
                    title="Asking 1 question",
                ),
            ),
            QUESTION,
        ],
        ":arrows_counterclockwise: **question** Asking 1 question · _waiting for your answer_",
        id="tool waiting for an answer",
    )
)


@pytest.mark.parametrize(("events", "expected"), CASES)
def test_turn_renders(events: list[AgentEvent], expected: str) -> None:
    assert play(*events).markdown() == expected


def test_events_of_other_sessions_change_nothing() -> None:
    view = play(text("prt_1", STEP1, "mine"))
    version = view.version
    other: list[AgentEvent] = [
        PartUpdated(session_id="ses_other", part=TextPart(part_id="p", message_id="m", text="x")),
        PartDelta(
            session_id="ses_other", message_id=STEP1, part_id="prt_1", field="text", delta="!"
        ),
        SessionIdle(session_id="ses_other"),
        SessionError(session_id="ses_other", name="APIError", message="no"),
    ]
    assert [view.apply(event, START) for event in other] == [False] * 4
    assert view.version == version
    assert view.markdown() == "mine"
    assert not view.is_finished


def test_version_counts_changes_only() -> None:
    view = TurnView(SES, started_ms=START)
    assert view.version == 0
    assert view.apply(text("prt_1", STEP1, "a"), START)
    assert not view.apply(text("prt_1", STEP1, "a"), START)  # a repeated snapshot
    assert not view.apply(BUSY, START)
    assert view.apply(IDLE, START + 5)
    assert not view.apply(IDLE, START + 9)  # the second idle after errors and aborts
    assert (view.version, view.finished_ms) == (2, START + 5)


def test_text_streamed_but_missing_from_history_is_carried_over() -> None:
    # Live: the text streamed as deltas, and a reasoning part that finished.
    live = play(
        message(STEP1),
        reasoning("prt_1", STEP1, "pondering"),
        text("prt_2", STEP1, ""),
        delta("prt_2", STEP1, "tick "),
        delta("prt_2", STEP1, "tick "),
    )
    # History of a server that died mid-answer: the text part as stored when it started.
    rebuilt = play(message(STEP1), reasoning("prt_1", STEP1, "pondering"), text("prt_2", STEP1, ""))
    before = rebuilt.version
    assert rebuilt.carry_text(live)
    assert rebuilt.text_only() == "tick tick "
    assert rebuilt.version == before + 1
    assert not rebuilt.carry_text(live)  # nothing left to carry


def test_carry_text_keeps_a_history_that_knows_more_or_differs() -> None:
    live = play(message(STEP1), text("prt_2", STEP1, "abc"), text("prt_3", STEP1, "xyz"))
    rebuilt = play(message(STEP1), text("prt_2", STEP1, "abcdef"), text("prt_3", STEP1, "other"))
    assert not rebuilt.carry_text(live)
    assert rebuilt.text_only() == "abcdef\n\nother"


def test_file_parts_are_listed_for_upload() -> None:
    file = FilePart(part_id="prt_2", message_id=STEP1, mime="text/plain", url="data:,x")
    prompt_file = FilePart(part_id="prt_0", message_id=USER, mime="text/plain", url="data:,y")
    view = play(
        message(USER, "user"),
        PartUpdated(session_id=SES, part=prompt_file),
        PartUpdated(session_id=SES, part=file),
    )
    assert view.file_parts() == (file,)
    assert view.markdown() == ":paperclip: file (text/plain)"


def test_split_posts_stay_within_the_limit_and_lose_nothing() -> None:
    body = "\n".join(f"line {n} of the listing" for n in range(40))
    answer = f"Here it is:\n\n```text\n{body}\n```\n\nAll good."
    view = play(text("prt_1", STEP1, answer), RUNNING_BASH, IDLE)
    document = view.markdown()
    posts = view.render(200)
    assert len(posts) > 1
    assert all(len(post) <= 200 for post in posts)
    plan = plan_split(document, 200)
    assert "".join(document[part.start : part.end] for part in plan) == document
    assert posts == [part.render(document) for part in plan]
    assert document.startswith(view.text_only())


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (-5, "0ms"),
        (3, "3ms"),
        (999, "999ms"),
        (1000, "1.0s"),
        (1449, "1.4s"),
        (1450, "1.5s"),
        (59_949, "59.9s"),
        (59_950, "1m 0s"),
        (125_000, "2m 5s"),
        (3_599_499, "59m 59s"),
        (3_599_500, "1h 0m"),
        (3_750_000, "1h 3m"),
    ],
)
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.parametrize(
    ("text", "closer"),
    [
        ("no code", ""),
        ("```\ncode\n```", ""),
        ("```py\ncode", "\n```"),
        ("````\n```\n", "````"),
        ("~~~\n```\n", "~~~"),
        ("``` not `a` fence\n", ""),
        ("   ```\nindented fence", "\n```"),
        ("    ```\nindented code, no fence", ""),
    ],
)
def test_fence_closer(text: str, closer: str) -> None:
    assert fence_closer(text) == closer


# --- convergence --------------------------------------------------------------------------------


@given(
    events=st.lists(st.tuples(st.booleans(), st.text(max_size=8)), max_size=30),
    final=st.text(max_size=20),
)
def test_any_mix_of_deltas_and_snapshots_ends_at_the_last_snapshot(
    events: list[tuple[bool, str]], final: str
) -> None:
    view = TurnView(SES, started_ms=START)
    for is_snapshot, value in events:
        event = text("prt_1", STEP1, value) if is_snapshot else delta("prt_1", STEP1, value)
        view.apply(event, START)
    view.apply(text("prt_1", STEP1, final), START)
    assert view.text_only() == final


@given(pieces=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=20), data=st.data())
def test_snapshots_taken_between_deltas_converge_to_the_whole_text(
    pieces: list[str], data: st.DataObject
) -> None:
    # The server's order: each snapshot is the text so far, taken after some delta.
    view = TurnView(SES, started_ms=START)
    snapshot_after = data.draw(st.sets(st.integers(0, len(pieces) - 1)))
    for n, piece in enumerate(pieces):
        view.apply(delta("prt_1", STEP1, piece), START)
        if n in snapshot_after:
            view.apply(text("prt_1", STEP1, "".join(pieces[: n + 1])), START)
    assert view.text_only() == "".join(pieces)


@given(data=st.data())
def test_order_does_not_depend_on_the_interleaving_of_parts(data: st.DataObject) -> None:
    streams: list[list[AgentEvent]] = [
        [text("prt_1", STEP1, ""), delta("prt_1", STEP1, "One "), text("prt_1", STEP1, "One.")],
        [
            tool("prt_2", "bash", "running", input={"command": "make"}),
            tool("prt_2", "bash", "completed", input={"command": "make"}, start_ms=0, end_ms=9),
        ],
        [delta("prt_3", STEP2, "Two"), delta("prt_3", STEP2, "."), text("prt_3", STEP2, "Two.")],
        [reasoning("prt_4", STEP2, "why"), text("prt_5", STEP2, "Three.")],
    ]
    expected = play(*(event for stream in streams for event in stream)).markdown()
    # Interleave the streams at random, keeping each stream's own order.
    order = data.draw(st.permutations([n for n, s in enumerate(streams) for _ in s]))
    cursors = [0] * len(streams)
    shuffled = []
    for n in order:
        shuffled.append(streams[n][cursors[n]])
        cursors[n] += 1
    assert play(*shuffled).markdown() == expected


def test_files_returned_by_a_completed_tool_are_listed_for_upload() -> None:
    chart = FilePart(part_id="prt_att", message_id=STEP1, mime="image/png", url="data:,x")
    running = ToolPart(
        part_id="prt_9", message_id=STEP1, tool="read", call_id="c", status="running"
    )
    done = msgspec.structs.replace(running, status="completed", attachments=(chart,))
    view = play(message(STEP1), PartUpdated(session_id=SES, part=running))
    assert view.file_parts() == ()
    view.apply(PartUpdated(session_id=SES, part=done), 0)
    assert view.file_parts() == (chart,)
