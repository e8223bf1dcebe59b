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
