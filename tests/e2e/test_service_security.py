"""Security over loopback: strangers are ignored, floods are cut off, tool lines hide secrets."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import msgspec
import trio

from mmthreads.core.flood import FLOOD_HEADING
from mmthreads.settings import FloodSettings
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mmthreads.harness.mattermost import Post
    from mmthreads.harness.opencode.observing import RecordedRequest
    from tests.e2e.conftest import Loopback

TOKEN: Final = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


def _calls(loopback: Loopback, method: str, suffix: str) -> list[RecordedRequest]:
    return [
        r for r in loopback.oc.standin.requests if r.method == method and r.path.endswith(suffix)
    ]


def _bot_posts(loopback: Loopback, heading: str) -> list[Post]:
    return [
        p
        for p in loopback.mm.posts_in(loopback.dm_id)
        if p.user_id == loopback.bot.id and p.message.startswith(heading)
    ]


class _Warnings(logging.Handler):
    """The bridge's inbound warnings, to know when it has handled every post."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        # Records come from the service's tasks, on the test's Trio thread.
        self.messages.append(record.getMessage())
        self._changed.set()
        self._changed = trio.Event()

    async def wait_count(self, fragment: str, count: int) -> None:
        """Wait until ``count`` warnings contain ``fragment``."""
        while sum(fragment in message for message in self.messages) < count:
            await self._changed.wait()


@contextmanager
def _watching_inbound() -> Iterator[_Warnings]:
    handler = _Warnings()
    logger = logging.getLogger("mmthreads.runtime.inbound")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_a_flood_is_cut_off_after_the_burst_with_one_notice(loopback: Loopback) -> None:
    burst = loopback.settings.flood.burst
    assert burst == 10
    with _watching_inbound() as warnings:
        with trio.fail_after(WATCHDOG):
            await loopback.start()
            session = loopback.oc.create_session(loopback.directory, "flooded")
            root = await loopback.root_of(session.id)
            for number in range(burst + 5):
                await loopback.human.post(loopback.dm_id, f"post {number}", root_id=root.id)
            # Every post has been handled once the five over the limit were turned away.
            await warnings.wait_count("flood limit", 5)
            prompts = f"/session/{session.id}/prompt_async"
            await loopback.oc.standin.signal.wait_for(
                lambda: len(_calls(loopback, "POST", prompts)) >= burst or None
            )
            notices = [
                p
                for p in loopback.mm.posts_in(loopback.dm_id)
                if p.message.startswith(FLOOD_HEADING)
            ]
            assert len(notices) == 1
            assert notices[0].root_id == root.id
            assert notices[0].message.startswith(
                ":warning: **Slow down** — more than 10 posts in a row; posts are not forwarded "
                "until "
            )
            assert notices[0].message.endswith(
                " UTC (then one every 3s). Repost what you still want sent."
            )
            sent = _calls(loopback, "POST", f"/session/{session.id}/prompt_async")
            assert len(sent) == burst
            assert [b"post 10" in r.body for r in sent] == [False] * burst


async def test_the_flood_limit_follows_the_settings(loopback: Loopback) -> None:
    limits = FloodSettings(burst=2, refill_interval=60.0)
    loopback.settings = msgspec.structs.replace(loopback.settings, flood=limits)
    with _watching_inbound() as warnings:
        with trio.fail_after(WATCHDOG):
            await loopback.start()
            for _ in range(4):
                await loopback.human.post(loopback.dm_id, "!help")
            # Either the notice (the limit applies) or all four answers (it does not).
            await loopback.mm.emulator.wait_for(
                lambda: (
                    _bot_posts(loopback, FLOOD_HEADING)
                    or len(_bot_posts(loopback, "**Commands**")) == 4
                    or None
                )
            )
            assert len(_bot_posts(loopback, "**Commands**")) == 2
            await warnings.wait_count("flood limit", 2)
            (notice,) = _bot_posts(loopback, FLOOD_HEADING)
            assert "more than 2 posts in a row" in notice.message
            assert "(then one every 60s)" in notice.message


async def test_a_flood_in_the_main_dm_gets_its_notice_there(loopback: Loopback) -> None:
    with _watching_inbound() as warnings:
        with trio.fail_after(WATCHDOG):
            await loopback.start()
            for _ in range(12):
                await loopback.human.post(loopback.dm_id, "!help")
            await warnings.wait_count("flood limit", 2)
            # The answers and the notice are queued; wait until all of them are posted.
            await loopback.mm.emulator.wait_for(
                lambda: len(_bot_posts(loopback, "**Commands**")) >= 10 or None
            )
            await loopback.mm.emulator.wait_for(lambda: _bot_posts(loopback, FLOOD_HEADING) or None)
            answers = _bot_posts(loopback, "**Commands**")
            notices = _bot_posts(loopback, FLOOD_HEADING)
            assert len(answers) == 10
            assert len(notices) == 1
            assert not notices[0].root_id


async def test_strangers_posts_reactions_and_commands_are_ignored(loopback: Loopback) -> None:
    mm, bot = loopback.mm, loopback.bot
    stranger = mm.create_user("mallory")
    intruder = mm.human(stranger)
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "not yours")
        root = await loopback.root_of(session.id)
        before = len(loopback.oc.standin.requests)

        # In the stranger's own DM with the bot: commands, a prompt, a thread, a reaction.
        own_dm = await intruder.dm_with(bot)
        status = await intruder.post(own_dm.id, "!status")
        await intruder.post(own_dm.id, "!sessions")
        await intruder.post(own_dm.id, "please run rm -rf /")
        await intruder.post(own_dm.id, "!models", root_id=status.id)
        await intruder.react(status.id, "octagonal_sign")
        # In the owner's DM. Mattermost lets no third person in a DM; the emulator is widened
        # so that the events reach the bot, as they would for an administrator's account.
        state = mm.emulator.state
        state.members[loopback.dm_id] = state.members[loopback.dm_id] | {stranger.id}
        await intruder.post(loopback.dm_id, "USE_TOOLS", root_id=root.id)
        await intruder.post(loopback.dm_id, "!model 2", root_id=root.id)
        await intruder.react(root.id, "octagonal_sign")
        await intruder.react(root.id, "repeat")

        # The owner's command is handled after all of those (one event stream, in order).
        asked = await loopback.human.post(loopback.dm_id, "!sessions")
        await mm.wait_post(
            lambda p: p.user_id == bot.id and p.create_at >= asked.create_at and not p.root_id
        )
        assert [p for p in mm.posts_in(own_dm.id) if p.user_id == bot.id] == []
        assert [p.id for p in mm.thread(root.id)] == [root.id] + [
            p.id for p in mm.thread(root.id) if p.user_id == stranger.id
        ]
        assert [r for r in loopback.oc.standin.requests[before:] if r.method != "GET"] == []
        assert (await loopback.saved_mapping(session.id)).model == ""


async def test_a_secret_in_a_tool_call_is_redacted_in_the_thread(loopback: Loopback) -> None:
    command = f"curl -H 'Authorization: Bearer {TOKEN}' https://api.github.com/user"
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "careful")
        root = await loopback.root_of(session.id)
        await loopback.human.post(loopback.dm_id, f"RUN_BASH {command}", root_id=root.id)
        request = await loopback.oc.standin.wait_permission_asked(session.id)
        loopback.oc.standin.reply_permission(request.id, "once")
        answer = await loopback.bot_reply(root.id, _is_done)
        tool = next(
            line for line in answer.message.splitlines() if line.startswith(":heavy_check_mark:")
        )
        assert tool.startswith(
            ":heavy_check_mark: **bash** `curl -H 'Authorization: Bearer [redacted]' "
            "https://api.github.com/user`"
        )
        # The assistant's own text is shown exactly as the session wrote it.
        assert f"Ran: {command}" in answer.message.split("\n\n")
