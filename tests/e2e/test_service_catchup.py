"""Posts made while the bridge was not listening are handled exactly once (persisted cursor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from mmthreads.core.render import session_id_from_props
from mmthreads.runtime.cursor import cursor_path
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback

#: Real seconds to let a duplicate (if any) show up before counting.
SETTLE = 0.5


def _is_answer(loopback: Loopback, root_id: str, text: str) -> Callable[[Post], bool]:
    said = f"You said: {text}"
    return lambda p: p.user_id == loopback.bot.id and p.root_id == root_id and said in p.message


def _is_main_dm_answer(loopback: Loopback, after_ms: int) -> Callable[[Post], bool]:
    return lambda p: (
        p.user_id == loopback.bot.id
        and p.channel_id == loopback.dm_id
        and not p.root_id
        and session_id_from_props(p.props) is None
        and p.create_at > after_ms
    )


def _answers(loopback: Loopback, root_id: str, text: str) -> list[Post]:
    return [p for p in loopback.mm.thread(root_id) if _is_answer(loopback, root_id, text)(p)]


def _main_dm_answers(loopback: Loopback, after_ms: int) -> list[Post]:
    check = _is_main_dm_answer(loopback, after_ms)
    return [p for p in loopback.mm.posts_in(loopback.dm_id) if check(p)]


async def test_posts_made_while_down_are_handled_once(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        running = await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "catch me up")
        root = await loopback.root_of(session.id)
        await running.stop()
        assert cursor_path(loopback.settings.mapping_file).exists()

        prompt = await loopback.human.post(loopback.dm_id, "while you slept", root_id=root.id)
        command = await loopback.human.post(loopback.dm_id, "!sessions")
        running = await loopback.start()
        await loopback.mm.wait_post(_is_answer(loopback, root.id, "while you slept"))
        await loopback.mm.wait_post(_is_main_dm_answer(loopback, command.create_at))
        await trio.sleep(SETTLE)
        assert len(_answers(loopback, root.id, "while you slept")) == 1
        assert len(_main_dm_answers(loopback, command.create_at)) == 1
        assert prompt.id in [p.id for p in loopback.mm.thread(root.id)]
        await running.stop()

        # Again: nothing handled before is handled a second time.
        running = await loopback.start()
        await trio.sleep(SETTLE)
        assert len(_answers(loopback, root.id, "while you slept")) == 1
        assert len(_main_dm_answers(loopback, command.create_at)) == 1
        await running.stop()


async def test_first_start_does_not_replay_history(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        old = await loopback.human.post(loopback.dm_id, "!sessions")
        await loopback.start()
        fresh = await loopback.human.post(loopback.dm_id, "!status")
        await loopback.mm.wait_post(_is_main_dm_answer(loopback, fresh.create_at - 1))
        await trio.sleep(SETTLE)
        answers = _main_dm_answers(loopback, old.create_at - 1)
        assert len(answers) == 1
        assert "mmthreads status" in answers[0].message


async def test_websocket_drop_without_resume_catches_up_once(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "flaky socket")
        root = await loopback.root_of(session.id)
        loopback.mm.refuse_websockets_for(1.0)
        loopback.mm.emulator.forget_connections()
        loopback.mm.disconnect_all_websockets()
        await loopback.human.post(loopback.dm_id, "in the gap", root_id=root.id)
        command = await loopback.human.post(loopback.dm_id, "!sessions")
        await loopback.mm.wait_post(_is_answer(loopback, root.id, "in the gap"))
        await loopback.mm.wait_post(_is_main_dm_answer(loopback, command.create_at))
        await trio.sleep(SETTLE)
        assert len(_answers(loopback, root.id, "in the gap")) == 1
        assert len(_main_dm_answers(loopback, command.create_at)) == 1
