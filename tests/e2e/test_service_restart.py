"""Stopping and starting the service: threads re-attach from the mapping file, no duplicates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


async def test_restart_reattaches_without_duplicate_roots(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        running = await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "survivor")
        root = await loopback.root_of(session.id)
        await running.stop()
        assert loopback.settings.mapping_file.exists()

        await loopback.start()
        prompt = await loopback.human.post(loopback.dm_id, "still with me?", root_id=root.id)
        answer = await loopback.bot_reply(root.id, _is_done)
        assert "Hello from the stub model! You said: still with me?" in answer.message.split("\n\n")
        assert [p.id for p in loopback.roots()] == [root.id]
        assert [p.id for p in loopback.mm.thread(root.id)] == [root.id, prompt.id, answer.id]


async def test_stop_is_prompt_and_leaves_the_file_written(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        running = await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "flushed")
        await loopback.root_of(session.id)
        with trio.fail_after(loopback.settings.timeouts.graceful_timeout):
            await running.stop()
        mapping = await loopback.saved_mapping(session.id)
        assert mapping.status.value == "active"


async def test_session_created_while_down_is_adopted_at_start(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        session = loopback.oc.create_session(loopback.directory, "early bird")
        await loopback.start()
        root = await loopback.root_of(session.id)
        assert "early bird" in root.message
        assert [p.id for p in loopback.roots()] == [root.id]


async def test_child_sessions_get_no_thread(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        parent = loopback.oc.create_session(loopback.directory, "parent")
        child = loopback.oc.create_session(loopback.directory, "child", parent_id=parent.id)
        later = loopback.oc.create_session(loopback.directory, "later")
        await loopback.root_of(later.id)
        roots = {p.props.get("mmthreads_session_id") for p in loopback.roots()}
        assert roots == {parent.id, later.id}
        assert child.id not in roots
