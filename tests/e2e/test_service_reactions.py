"""The owner's reactions in a session thread: abort and repeat, each confirmed.

Reactions on permission cards are tested with the cards (``test_service_cards.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from mmthreads.core.render import SESSION_ENDED
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


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


async def test_a_reaction_in_an_ended_thread_is_answered_like_a_post(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "short life")
        root = await loopback.root_of(session.id)
        await loopback.human.post(loopback.dm_id, "hello", root_id=root.id)
        answer = await loopback.bot_reply(root.id, _is_done)
        loopback.oc.delete_session(session.id)
        await loopback.bot_reply(root.id, lambda p: "Session ended" in p.message)
        await loopback.human.react(answer.id, "repeat")
        reply = await loopback.bot_reply(root.id, lambda p: p.message == SESSION_ENDED)
        assert reply.root_id == root.id
        prompts = [r for r in loopback.oc.standin.requests if r.path.endswith("/prompt_async")]
        assert len(prompts) == 1  # the repeat was not sent
