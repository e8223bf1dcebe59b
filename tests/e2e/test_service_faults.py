"""Servers restarting under the bridge: threads say what happened, and nothing is lost."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import trio

from mmthreads.core.backoff import RetryPolicy
from mmthreads.settings import RetryPolicies
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback

_QUICK = RetryPolicy(initial_delay=0.05, max_delay=0.2)


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


def _quick_retries(loopback: Loopback) -> None:
    retry = RetryPolicies(mattermost=_QUICK, opencode=_QUICK)
    loopback.settings = msgspec.structs.replace(loopback.settings, retry=retry)


async def test_mattermost_restart_loses_no_prompt(loopback: Loopback) -> None:
    _quick_retries(loopback)
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "chat restart")
        root = await loopback.root_of(session.id)
        await loopback.mm.restart()
        await loopback.human.post(loopback.dm_id, "after the restart", root_id=root.id)
        answer = await loopback.bot_reply(root.id, _is_done)
        expected = "Hello from the stub model! You said: after the restart"
        assert expected in answer.message.split("\n\n")


async def test_opencode_restart_disconnects_and_restores_the_thread(loopback: Loopback) -> None:
    _quick_retries(loopback)
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "agent restart")
        root = await loopback.root_of(session.id)
        await loopback.oc.restart(down_for=0.3)
        await loopback.bot_reply(
            root.id, lambda p: p.message.startswith(":warning: Lost the connection to OpenCode")
        )
        await loopback.bot_reply(
            root.id, lambda p: p.message.startswith(":white_check_mark: Connection to OpenCode")
        )
        await loopback.human.post(loopback.dm_id, "are you back?", root_id=root.id)
        answer = await loopback.bot_reply(root.id, _is_done)
        expected = "Hello from the stub model! You said: are you back?"
        assert expected in answer.message.split("\n\n")


def _notice_delay(loopback: Loopback, seconds: float) -> None:
    sessions = msgspec.structs.replace(loopback.settings.sessions, disconnect_notice_delay=seconds)
    loopback.settings = msgspec.structs.replace(loopback.settings, sessions=sessions)


async def test_a_short_opencode_gap_posts_no_notices(loopback: Loopback) -> None:
    _quick_retries(loopback)
    _notice_delay(loopback, 3.0)
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "blip")
        root = await loopback.root_of(session.id)
        down = trio.Event()

        async def restart() -> None:
            await loopback.oc.restart(down_for=0.3)
            down.set()

        loopback.nursery.start_soon(restart)
        await trio.sleep(0.1)  # the server is down now; the prompt waits in the thread
        await loopback.human.post(loopback.dm_id, "during the blip", root_id=root.id)
        await down.wait()
        answer = await loopback.bot_reply(root.id, _is_done)
        assert "Hello from the stub model! You said: during the blip" in answer.message
        await trio.sleep(3.5)  # past the notice delay: nothing was held back to post
        thread = [p.message for p in loopback.mm.posts_in(loopback.dm_id) if p.root_id]
        assert not [m for m in thread if "Connection to OpenCode" in m or "Lost the" in m]
        assert len(thread) == 2  # the prompt and its answer


async def test_a_long_opencode_gap_posts_both_notices_once(loopback: Loopback) -> None:
    _quick_retries(loopback)
    _notice_delay(loopback, 0.5)
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "outage")
        root = await loopback.root_of(session.id)
        await loopback.oc.restart(down_for=1.5)
        await loopback.bot_reply(
            root.id, lambda p: p.message.startswith(":white_check_mark: Connection to OpenCode")
        )
        thread = [p.message for p in loopback.mm.posts_in(loopback.dm_id) if p.root_id]
        assert len([m for m in thread if m.startswith(":warning: Lost the connection")]) == 1
        assert len([m for m in thread if "Connection to OpenCode" in m]) == 1
        assert thread.index(next(m for m in thread if "Lost the" in m)) < len(thread) - 1


async def test_output_during_a_mattermost_outage_arrives_in_order(loopback: Loopback) -> None:
    _quick_retries(loopback)
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "chat outage")
        root = await loopback.root_of(session.id)
        await loopback.human.post(loopback.dm_id, "SLOW 300", root_id=root.id)
        await loopback.bot_reply(root.id, lambda p: p.message.startswith("tick"))
        await loopback.mm.restart(downtime=1.5)  # the answer goes on streaming meanwhile
        answer = await loopback.bot_reply(root.id, _is_done)
        assert answer.message.startswith("tick " * 300 + "\n\n:checkered_flag: **Done**")
        thread = [p for p in loopback.mm.posts_in(loopback.dm_id) if p.root_id == root.id]
        assert [p.user_id for p in thread] == [loopback.owner.id, loopback.bot.id]
        assert thread[1].id == answer.id  # one answer post, edited, never posted twice


async def test_mattermost_down_at_start_up_is_waited_for(loopback: Loopback) -> None:
    _quick_retries(loopback)
    with trio.fail_after(WATCHDOG):
        await loopback.mm.set_unreachable()
        session = loopback.oc.create_session(loopback.directory, "early bird")
        started = trio.Event()

        async def start() -> None:
            await loopback.start()
            started.set()

        loopback.nursery.start_soon(start)
        await trio.sleep(0.5)  # the bridge keeps trying meanwhile
        assert not started.is_set()
        await loopback.mm.set_reachable()
        await started.wait()
        root = await loopback.root_of(session.id)  # adopted once Mattermost answered
        assert len(loopback.roots()) == 1
        await loopback.human.post(loopback.dm_id, "now", root_id=root.id)
        answer = await loopback.bot_reply(root.id, _is_done)
        assert "Hello from the stub model! You said: now" in answer.message
