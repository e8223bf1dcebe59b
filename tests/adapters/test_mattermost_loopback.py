"""The Mattermost adapters against the harness emulator on 127.0.0.1, with the real clock.

These are the slow, realistic tests: real HTTP and WebSocket over loopback, the emulator's
shapes, its rate limiter, its fault plans, abnormal closes and restarts.  Every test runs
under ``trio.fail_after(DEADLINE)``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import pytest
import trio

from mmthreads.adapters.mattermost_rest import MattermostClient
from mmthreads.adapters.mattermost_ws import run_chat_connection
from mmthreads.core.backoff import RetryPolicy
from mmthreads.core.chat_events import (
    ChatConnected,
    ChatDisconnected,
    ChatEvent,
    PostCreated,
    PostEdited,
    ReactionChanged,
)
from mmthreads.errors import ChatAuthError, ChatFileTooLarge, ChatNotFound, ChatRequestError
from mmthreads.harness.faults import FaultPlan, Status
from mmthreads.harness.mattermost import (
    Account,
    MattermostServer,
    RateLimit,
    Resume,
    open_mattermost_emulator,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

T = TypeVar("T")

DEADLINE = 20
FAST = RetryPolicy(initial_delay=0.05, factor=2, max_delay=0.4)


@asynccontextmanager
async def chat_events(
    nursery: trio.Nursery, mm: MattermostServer, bot: Account
) -> AsyncIterator[trio.MemoryReceiveChannel[ChatEvent]]:
    send, receive = trio.open_memory_channel[ChatEvent](100)
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None]) -> None:
        with scope:
            await run_chat_connection(mm.url, bot.token, send, policy=FAST, task_status=task_status)

    await nursery.start(run)
    try:
        yield receive
    finally:
        scope.cancel()


async def next_event(channel: trio.MemoryReceiveChannel[ChatEvent], kind: type[T]) -> T:
    """The next event of ``kind``, skipping others (e.g. the bot's own posts)."""
    while True:
        event = await channel.receive()
        if isinstance(event, kind):
            return event


async def test_a_bot_flow_over_rest() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot_account = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            async with MattermostClient(mm.url + "/api/v4/", bot_account.token) as client:
                me = await client.get_me()
                assert (me.id, me.username, me.is_bot) == (bot_account.id, "bot", True)
                assert (await client.get_user_by_username("alice")).id == alice.id
                assert (await client.get_user(alice.id)).username == "alice"
                dm = await client.create_direct_channel(me.id, alice.id)
                assert dm.type == "D"
                assert dm.name == "__".join(sorted([me.id, alice.id]))
                assert (await client.get_channel(dm.id)).id == dm.id
                limits = await client.client_config()
                assert limits.max_post_size == 16383

                root = await client.create_post(dm.id, "session", props={"session_id": "ses_1"})
                assert root.props["session_id"] == "ses_1"
                assert root.props["from_bot"] == "true"
                since = root.create_at
                info = await client.upload_file(dm.id, "notes.txt", b"hello file")
                assert (info.name, info.size, info.post_id) == ("notes.txt", 10, "")
                reply = await client.create_post(
                    dm.id, "reply", root_id=root.id, file_ids=[info.id]
                )
                assert reply.file_ids == [info.id]
                patched = await client.patch_post(reply.id, message="reply, edited")
                assert patched.edit_at > 0
                reaction = await client.add_reaction(me.id, root.id, "white_check_mark")
                assert reaction.emoji_name == "white_check_mark"
                await client.typing(dm.id, root.id)

                thread = await client.get_thread(reply.id)
                assert [p.id for p in thread.in_order()] == [root.id, reply.id]
                changed = await client.get_posts_since(dm.id, since)
                assert reply.id in changed.posts
                page = await client.get_channel_posts(dm.id, 0, 10)
                assert set(page.order) == {root.id, reply.id}
                assert (await client.get_file_info(info.id)).post_id == reply.id
                assert await client.get_file(info.id) == b"hello file"
                with pytest.raises(ChatFileTooLarge):
                    await client.get_file(info.id, max_bytes=4)
                assert (await client.get_post(reply.id)).message == "reply, edited"

                await client.remove_reaction(me.id, root.id, "white_check_mark")
                with pytest.raises(ChatRequestError) as caught:
                    await client.create_post(dm.id, "bad", root_id=reply.id)
                assert caught.value.error_id == "api.post.create_post.root_id.app_error"
                await client.delete_post(root.id)
                with pytest.raises(ChatNotFound):
                    await client.get_post(reply.id)  # the replies went with their root
            async with MattermostClient(mm.url, "not-a-token") as stranger:
                with pytest.raises(ChatAuthError) as refused:
                    await stranger.get_me()
                assert refused.value.status == 401


async def test_the_websocket_reports_a_humans_posts_and_reactions(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.human(mm.create_user("alice"))
            async with chat_events(nursery, mm, bot) as events:
                connected = await events.receive()
                assert isinstance(connected, ChatConnected)
                assert (connected.reconnect, connected.resumed) == (False, False)
                dm = await alice.dm_with(bot)
                root = await alice.post(dm.id, "fix the flaky test")
                created = await next_event(events, PostCreated)
                assert (created.post.id, created.post.message) == (root.id, "fix the flaky test")
                assert (created.channel_type, created.sender_name) == ("D", "@alice")
                await alice.edit(root.id, "fix both flaky tests")
                edited = await next_event(events, PostEdited)
                assert edited.post.message == "fix both flaky tests"
                await alice.react(root.id, "octagonal_sign")
                await alice.unreact(root.id, "octagonal_sign")
                added = await next_event(events, ReactionChanged)
                removed = await next_event(events, ReactionChanged)
                expected = ReactionChanged(
                    added=True,
                    user_id=alice.account.id,
                    post_id=root.id,
                    emoji_name="octagonal_sign",
                    channel_id=dm.id,
                )
                assert (added, removed) == (expected, ReactionChanged(
                    **{**{f: getattr(expected, f) for f in expected.__struct_fields__},
                       "added": False}
                ))  # fmt: skip


async def test_an_abnormal_close_resumes_without_losing_posts(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.human(mm.create_user("alice"))
            dm = await alice.dm_with(bot)
            async with chat_events(nursery, mm, bot) as events:
                first = await next_event(events, ChatConnected)
                assert mm.disconnect_all_websockets(1006) == 1
                meanwhile = await alice.post(dm.id, "posted while the bot was away")
                lost = await next_event(events, ChatDisconnected)
                assert lost.code == 1006
                back = await next_event(events, ChatConnected)
                assert back == ChatConnected(
                    connection_id=first.connection_id, reconnect=True, resumed=True
                )
                created = await next_event(events, PostCreated)
                assert created.post.id == meanwhile.id  # resumed: delivered, nothing to fetch
            assert mm.emulator.connects[-1].resume in (Resume.REPLAYED, Resume.LOSSLESS)


async def test_after_a_restart_missed_posts_are_recovered_over_rest(
    nursery: trio.Nursery,
) -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice_account = mm.create_user("alice")
            alice = mm.human(alice_account)
            dm = await alice.dm_with(bot)
            seen = await alice.post(dm.id, "before")
            async with chat_events(nursery, mm, bot) as events:
                first = await next_event(events, ChatConnected)
                await mm.set_unreachable()
                assert (await next_event(events, ChatDisconnected)).code == 1006
                # Written while the server cannot be reached: no socket will ever carry it.
                missed = mm.emulator.post_as(alice_account, dm.id, "during the outage")
                mm.emulator.forget_connections()  # a restart loses every resume state
                await mm.set_reachable()
                back = await next_event(events, ChatConnected)
                assert (back.reconnect, back.resumed) == (True, False)
                assert back.connection_id != first.connection_id
                async with MattermostClient(mm.url, bot.token) as client:
                    recovered = await client.get_posts_since(dm.id, seen.update_at)
                assert missed.id in recovered.posts
                after = await alice.post(dm.id, "after")
                assert (await next_event(events, PostCreated)).post.id == after.id


async def test_a_restart_with_downtime_reconnects(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            async with chat_events(nursery, mm, bot) as events:
                await next_event(events, ChatConnected)
                await mm.restart(downtime=0.3)
                await next_event(events, ChatDisconnected)
                back = await next_event(events, ChatConnected)
                assert (back.reconnect, back.resumed) == (True, False)


async def test_refused_upgrades_are_retried(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            mm.refuse_websockets_for(0.5)
            start = trio.current_time()
            async with chat_events(nursery, mm, bot) as events:
                assert trio.current_time() - start >= 0.5
                assert isinstance(await events.receive(), ChatConnected)


async def test_the_client_paces_itself_under_rate_limiting() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(rate_limit=RateLimit(per_sec=4, max_burst=1)) as mm:
            bot = mm.create_user("bot", bot=True)
            async with MattermostClient(mm.url, bot.token) as client:
                for _ in range(5):
                    assert (await client.get_me()).id == bot.id
                assert client.rate_limit is not None
                assert client.rate_limit.limit == 2
            statuses = [r.status for r in mm.emulator.requests]
            assert statuses.count(200) == 5
            assert 429 in statuses


async def test_a_planned_429_is_waited_out() -> None:
    plan = FaultPlan()
    plan.add("http:POST /api/v4/posts", Status(status=429, retry_after=0.5), times=2)
    plan.add("http:GET /api/v4/users/me", Status(status=503), times=2)
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            async with MattermostClient(mm.url, bot.token, retry_policy=FAST) as client:
                me = await client.get_me()
                dm = await client.create_direct_channel(me.id, alice.id)
                start = trio.current_time()
                post = await client.create_post(dm.id, "hello")
                assert trio.current_time() - start >= 1.0
            assert [p.id for p in mm.posts_in(dm.id)] == [post.id]
    assert len(plan.recorded("http:POST /api/v4/posts")) == 2
    assert len(plan.recorded("http:GET /api/v4/users/me")) == 2


async def test_the_token_appears_in_no_log(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "loopback-SECRET-token-0042"
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True, token=token)
            async with MattermostClient(mm.url, token) as client:
                await client.get_me()
            async with chat_events(nursery, mm, bot) as events:
                await next_event(events, ChatConnected)
                mm.disconnect_all_websockets(1006)
                await next_event(events, ChatConnected)
    assert caplog.records
    leaked = [r.name for r in caplog.records if token in r.getMessage()]
    assert leaked == []
