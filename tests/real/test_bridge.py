"""The bridge between the Mattermost emulator and a real ``opencode serve``, scenario by scenario.

Every test here shares one real server and stub model (``shared_real``) but has its own emulator,
bridge, project directory and sessions.  Sessions are created through OpenCode's API, as a TUI
would; the owner drives them from the thread.  What OpenCode did is checked on OpenCode's side
(the stub model's recorded requests, the session's messages, files in the project); what the
owner sees is checked in the thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from mmthreads.core.agent_events import Todo
from mmthreads.core.cards import QUESTION_PROP
from mmthreads.core.render import SESSION_ENDED, root_post
from mmthreads.core.turn_render import reasoning_line, todo_lines
from mmthreads.harness.script import Reply, long_text, plan_step
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.effects import ACK_EMOJI
from tests.real.conftest import (
    DONE,
    WATCHDOG,
    is_final,
    is_permission_card,
    tool_calls_of,
    tool_results,
    turn_requests,
    wait_permission_card,
    wait_reason_asked,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mmthreads.harness.mattermost import Post
    from tests.real.conftest import Bridge, Server


def blocks(post: Post) -> list[str]:
    """The post's blocks (the bridge separates reasoning, text, tools, todos and totals so)."""
    return post.message.split("\n\n")


async def test_a_new_session_gets_its_thread(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project, title="from the API")
        root = await bridge.root_of(session_id)
        mapping = await bridge.saved_mapping(session_id)
    assert root.user_id == bridge.bot.id
    assert root.props["mmthreads_session_id"] == session_id
    assert root.props["mmthreads_directory"] == str(project)
    assert root.message == root_post(mapping)
    assert mapping.directory == str(project)
    assert mapping.project_name == project.name
    assert mapping.session_title == "from the API"
    assert mapping.opencode_server == shared_real.url
    assert [p.id for p in bridge.roots()] == [root.id]


async def test_a_reply_streams_the_scripted_answer_exactly(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    words = "hello there, from the thread"
    expected = plan_step(words, 0)
    assert isinstance(expected, Reply)
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        prompt = await bridge.prompt(root, words)
        answer = await bridge.answer(root.id)
        await bridge.mm.emulator.wait_reaction(prompt.id, ACK_EMOJI)
        # The generated title (the stub's first words of the prompt) reaches the root post.
        await bridge.mm.wait_post(lambda p: p.id == root.id and "Title: hello there" in p.message)
    shown = blocks(answer)
    assert shown[0] == reasoning_line(expected.reasoning, streaming=False)
    assert "\n\n".join(shown[1:-1]) == expected.text
    assert shown[-1].startswith(DONE)
    assert is_final(answer)
    # Streamed: created early, then edited in place.
    edits = [
        r
        for r in bridge.mm.emulator.requests
        if r.method == "PUT" and r.path == f"/api/v4/posts/{answer.id}/patch"
    ]
    assert len(edits) >= 2
    # The model saw the prompt exactly once, as typed.
    assert [r.prompt for r in turn_requests(shared_real, words)] == [words]
    assert [p.id for p in bridge.thread(root.id)] == [root.id, prompt.id, answer.id]


async def test_a_long_markdown_answer_is_shown_exactly(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        await bridge.prompt(root, "LONG 1500")
        answer = await bridge.answer(root.id)
    text, _, done = answer.message.rpartition("\n\n")
    assert text == long_text(1500)
    assert done.startswith(DONE)


async def test_a_tool_turn_shows_its_tool_lines_and_todo_list(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        await bridge.prompt(root, "USE_TOOLS please")
        card = await wait_permission_card(bridge, root)
        await bridge.human.react(card.id, "white_check_mark")
        answer = await bridge.answer(root.id)
    todos = (
        Todo(content="say hello", status="in_progress", priority="high"),
        Todo(content="run echo", status="pending", priority="low"),
    )
    shown = blocks(answer)
    assert shown[0] == reasoning_line("All tools done.", streaming=False)
    assert shown[1] == "Finished: tools ran OK."
    tools = shown[2].splitlines()
    assert len(tools) == 2
    assert tools[0].startswith(":heavy_check_mark: **todowrite** 2 todos (")
    assert tools[1].startswith(":heavy_check_mark: **bash** `echo hello-from-tool` (")
    assert shown[3] == todo_lines(todos)
    assert shown[4].startswith(DONE)
    assert len(shown) == 5
    # OpenCode ran the command: its output went back to the model.
    results = tool_results(shared_real, "USE_TOOLS please")
    assert any("hello-from-tool" in "".join(result) for result in results)


async def test_an_approved_command_runs_and_a_rejected_one_does_not(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    reason = "not in this repository, thanks"
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)

        approved = "RUN_BASH touch approved.txt"
        await bridge.prompt(root, approved)
        card = await wait_permission_card(bridge, root)
        assert "touch approved.txt" in card.message
        await bridge.human.react(card.id, "white_check_mark")
        first = await bridge.answer(root.id)
        assert "Ran: touch approved.txt" in blocks(first)
        assert (project / "approved.txt").exists()

        rejected = "RUN_BASH touch rejected.txt"
        asked = await bridge.prompt(root, rejected)
        card = await wait_permission_card(bridge, root, after=asked)
        assert "touch rejected.txt" in card.message
        await bridge.human.react(card.id, "x")
        await wait_reason_asked(bridge, card)
        await bridge.prompt(root, reason)
        # OpenCode tells the model the call was rejected, with the reason.
        await shared_real.wait_request(
            lambda r: r.prompt == rejected and r.turn is not None and r.turn.done_tools == 1
        )
        await bridge.bot_reply(root.id, lambda p: p.id != first.id and is_final(p))
    assert not (project / "rejected.txt").exists()
    calls = await tool_calls_of(shared_real, project, session_id)
    assert [(c["state"]["input"]["command"], c["state"]["status"]) for c in calls] == [
        ("touch approved.txt", "completed"),
        ("touch rejected.txt", "error"),
    ]
    assert reason in calls[1]["state"]["error"]
    [result] = [r for r in tool_results(shared_real, rejected) if r]
    assert reason in "".join(result)
    # The reason was an answer to the card, not a prompt.
    assert not turn_requests(shared_real, reason)


async def test_approve_always_suppresses_the_next_identical_ask(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    command = "RUN_BASH echo always-ok"
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        await bridge.prompt(root, command)
        card = await wait_permission_card(bridge, root)
        await bridge.human.react(card.id, "infinity")
        first = await bridge.answer(root.id)
        # The same command again: no ask this time, the turn runs through on its own.
        again = await bridge.prompt(root, command)
        second = await bridge.answer(root.id, after=again)
    assert first.id != second.id
    assert "Ran: echo always-ok" in blocks(second)
    assert len([p for p in bridge.thread(root.id) if is_permission_card(p)]) == 1
    assert await shared_real.get("/permission", project) == []
    calls = await tool_calls_of(shared_real, project, session_id)
    assert [c["state"]["status"] for c in calls] == ["completed", "completed"]
    results = tool_results(shared_real, command)
    assert sum("always-ok" in "".join(result) for result in results) == 2


async def test_the_stop_sign_aborts_a_long_turn(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    words = "SLOW 3000"  # 30 s of ticks: far longer than the test waits
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        await bridge.prompt(root, words)
        await bridge.bot_reply(root.id, lambda p: p.message.count("tick") >= 3)
        await bridge.human.react(root.id, "octagonal_sign")
        stopped = await bridge.bot_reply(
            root.id, lambda p: is_final(p) and ":octagonal_sign: Stopped after" in p.message
        )
        # The model's stream was cut: OpenCode hung up on the stub.
        request = await shared_real.wait_request(
            lambda r: r.prompt == words and not r.is_title and r.disconnected
        )
    assert stopped.message.startswith("tick tick tick")
    assert not request.finished
    assert DONE not in stopped.message
    status = await shared_real.get("/session/status", project)
    assert session_id not in status


async def test_an_attached_text_file_reaches_the_model(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    content = b"the attached notes\nsecond line\n"
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        info = await bridge.human.upload(bridge.dm_id, "notes.txt", content)
        await bridge.prompt(root, "ECHO_FILES", file_ids=[info.id])
        answer = await bridge.answer(root.id)
    shown = blocks(answer)
    assert shown[:-1] == [f"Received notes.txt (text/plain, {len(content)} bytes)"]
    [request] = turn_requests(shared_real, "ECHO_FILES")
    assert [(a.filename, a.mime, a.size) for a in request.attachments] == [
        ("notes.txt", "text/plain", len(content))
    ]
    assert content.decode() in request.text()


async def test_two_sessions_in_two_directories_prompted_at_once_stay_separate(
    bridge: Bridge, shared_real: Server, project: Path, tmp_path: Path
) -> None:
    from mmthreads.harness.real_opencode import make_git_project

    other = make_git_project(tmp_path / "other-project")
    words = {project: "LONG 600 for the first", other: "a prompt for the second"}
    with trio.fail_after(WATCHDOG):
        ids = {d: await shared_real.create_session(d) for d in words}
        roots = {d: await bridge.root_of(ids[d]) for d in words}
        async with trio.open_nursery() as nursery:
            for directory, text in words.items():
                nursery.start_soon(bridge.prompt, roots[directory], text)
        answers = {d: await bridge.answer(roots[d].id) for d in words}
    first, second = answers[project], answers[other]
    assert first.message.rpartition("\n\n")[0] == long_text(600)
    expected = plan_step(words[other], 0)
    assert isinstance(expected, Reply)
    assert blocks(second)[1:-1] == [expected.text]
    for directory, text in words.items():
        root = roots[directory]
        mapping = await bridge.saved_mapping(ids[directory])
        assert mapping.directory == str(directory)
        thread = bridge.thread(root.id)
        assert [p.message for p in thread[1:]] == [text, answers[directory].message]


async def test_deleting_the_session_ends_the_thread(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        await shared_real.delete_session(project, session_id)
        ended = await bridge.bot_reply(root.id, lambda p: p.message.startswith("**Session ended**"))
        late = await bridge.prompt(root, "still there?")
        reply = await bridge.bot_reply(root.id, lambda p: p.message == SESSION_ENDED)
        mapping = MappingStore(bridge.settings.mapping_file).load().index.get(session_id)
        while mapping is None or mapping.status.value != "ended":
            await trio.sleep(0.01)  # written by the bridge's task right after the notice
            mapping = MappingStore(bridge.settings.mapping_file).load().index.get(session_id)
    assert reply.create_at >= late.create_at
    assert [p.id for p in bridge.thread(root.id)] == [root.id, ended.id, late.id, reply.id]
    assert not [r for r in shared_real.requests if r.prompt == "still there?"]


async def test_a_question_is_answered_from_the_thread(
    bridge: Bridge, shared_real: Server, project: Path
) -> None:
    words = "ASK_QUESTION about the button"
    with trio.fail_after(WATCHDOG):
        session_id = await shared_real.create_session(project)
        root = await bridge.root_of(session_id)
        await bridge.prompt(root, words)
        card = await bridge.bot_reply(root.id, lambda p: QUESTION_PROP in p.props)
        assert "Which colour should the button be?" in card.message
        await bridge.prompt(root, "2")  # the second option
        answer = await bridge.answer(root.id)
    assert "You chose: Blue" in blocks(answer)
    # OpenCode took the reply as the question's answer and gave it to the model.
    assert any("Blue" in result for result in tool_results(shared_real, words))
    assert not turn_requests(shared_real, "2")
    assert await shared_real.get("/question", project) == []
