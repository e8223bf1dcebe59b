"""The owner's reactions in a session thread: permissions, abort, repeat; each confirmed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


async def test_approve_once_lets_the_tool_run(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "tools")
        root = await loopback.root_of(session.id)
        prompt = await loopback.human.post(loopback.dm_id, "USE_TOOLS", root_id=root.id)
        await loopback.oc.standin.wait_permission_asked(session.id)
        await loopback.bot_reply(root.id, lambda p: "waiting for approval" in p.message)
        await loopback.human.react(prompt.id, "white_check_mark")
        await loopback.bot_reply(
            root.id, lambda p: p.message == ":white_check_mark: Approved once."
        )
        answer = await loopback.bot_reply(root.id, _is_done)
        assert "Finished: tools ran OK." in answer.message.split("\n\n")


async def test_reject_stops_the_tool(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "tools")
        root = await loopback.root_of(session.id)
        await loopback.human.post(loopback.dm_id, "USE_TOOLS", root_id=root.id)
        await loopback.oc.standin.wait_permission_asked(session.id)
        await loopback.bot_reply(root.id, lambda p: "waiting for approval" in p.message)
        await loopback.human.react(root.id, "x")
        await loopback.bot_reply(root.id, lambda p: p.message == ":x: Rejected.")
        await loopback.oc.standin.wait_idle(session.id)


async def test_repeat_sends_the_last_prompt_again(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "again")
        root = await loopback.root_of(session.id)
        await loopback.human.post(loopback.dm_id, "once more", root_id=root.id)
        first = await loopback.bot_reply(root.id, _is_done)
        await loopback.human.react(first.id, "repeat")
        await loopback.bot_reply(
            root.id, lambda p: p.message == ":repeat: Sending the last prompt again."
        )
        second = await loopback.bot_reply(root.id, lambda p: _is_done(p) and p.id != first.id)
        expected = "Hello from the stub model! You said: once more"
        assert expected in second.message.split("\n\n")


async def test_approving_with_nothing_pending_says_so(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "calm")
        root = await loopback.root_of(session.id)
        await loopback.human.react(root.id, "x")
        reply = await loopback.bot_reply(root.id, lambda p: True)
        assert reply.message == "No permission is waiting for an answer in this thread."


async def test_stop_sign_aborts_the_run(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "long run")
        root = await loopback.root_of(session.id)
        await loopback.human.post(loopback.dm_id, "SLOW 400", root_id=root.id)
        await loopback.bot_reply(root.id, lambda p: "tick" in p.message)
        await loopback.human.react(root.id, "octagonal_sign")
        await loopback.bot_reply(
            root.id, lambda p: p.message == ":octagonal_sign: Stopping the current run."
        )
        stopped = await loopback.bot_reply(root.id, lambda p: "Stopped" in p.message)
        assert stopped.message.startswith("tick")
