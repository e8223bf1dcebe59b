"""Every fault the emulator supports happens on the wire and is recorded in ``plan.records``."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import wsproto
from trio_websocket import ConnectionClosed, ConnectionRejected
from wsproto.events import Request

from mmthreads.harness.faults import CloseSocket, Delay, Drop, FaultPlan, Status
from mmthreads.harness.mattermost import (
    MattermostEmulator,
    RateLimit,
    Resume,
    open_mattermost_emulator,
)
from mmthreads.harness.mattermost.models import decode_post

from .loopback import DEADLINE, close_code, next_frame, open_socket


@pytest.mark.parametrize(
    ("outcome", "status", "content_type", "retry_after"),
    [
        (Status(status=503, retry_after=2), 503, "application/json", "2"),
        (Status(status=429, retry_after=1.5), 429, "text/plain; charset=utf-8", "1.5"),
        (Status(status=500, body='{"oops": true}'), 500, "application/json", None),
    ],
)
async def test_http_status_faults(
    outcome: Status, status: int, content_type: str, retry_after: str | None
) -> None:
    plan = FaultPlan()
    plan.add("http:GET /api/v4/users/me", outcome)
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            async with httpx.AsyncClient(
                base_url=mm.url, headers={"Authorization": f"Bearer {bot.token}"}
            ) as client:
                faulty = await client.get("/api/v4/users/me")
                assert (faulty.status_code, faulty.headers["content-type"]) == (
                    status,
                    content_type,
                )
                assert faulty.headers.get("retry-after") == retry_after
                if status == 429:
                    assert faulty.text == "limit exceeded\n"
                assert (await client.get("/api/v4/users/me")).status_code == 200
    assert [(r.target, r.outcome) for r in plan.records] == [("http:GET /api/v4/users/me", outcome)]


async def test_http_delay_and_drop() -> None:
    plan = FaultPlan()
    plan.add("http:POST /api/v4/posts", Delay(seconds=0.2))
    plan.add("http:GET /api/v4/system/ping", Drop())
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            dm = mm.emulator.direct_channel(alice, bot)
            async with httpx.AsyncClient(
                base_url=mm.url, headers={"Authorization": f"Bearer {bot.token}"}
            ) as client:
                start = trio.current_time()
                created = await client.post(
                    "/api/v4/posts", json={"channel_id": dm.id, "message": "late"}
                )
                assert created.status_code == 201
                assert trio.current_time() - start >= 0.2
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get("/api/v4/system/ping")
                assert (await client.get("/api/v4/system/ping")).status_code == 200
    assert [type(r.outcome) for r in plan.records] == [Delay, Drop]


async def test_rate_limiting() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(rate_limit=RateLimit(per_sec=1, max_burst=2)) as mm:
            bot = mm.create_user("bot", bot=True)
            async with httpx.AsyncClient(
                base_url=mm.url, headers={"Authorization": f"Bearer {bot.token}"}
            ) as client:
                allowed = [await client.get("/api/v4/users/me") for _ in range(3)]
                assert [r.status_code for r in allowed] == [200, 200, 200]
                assert [r.headers["x-ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
                assert allowed[0].headers["x-ratelimit-limit"] == "3"
                limited = await client.get("/api/v4/users/me")
                assert limited.status_code == 429
                assert limited.headers["content-type"] == "text/plain; charset=utf-8"
                assert limited.text == "limit exceeded\n"
                assert limited.headers["retry-after"] == "1"
                assert limited.headers["x-ratelimit-remaining"] == "0"


async def test_rate_limit_is_per_token() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(rate_limit=RateLimit(per_sec=1, max_burst=0)) as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            async with httpx.AsyncClient(base_url=mm.url) as client:
                for account in (bot, alice):
                    headers = {"Authorization": f"Bearer {account.token}"}
                    assert (
                        await client.get("/api/v4/users/me", headers=headers)
                    ).status_code == 200
                headers = {"Authorization": f"Bearer {bot.token}"}
                assert (await client.get("/api/v4/users/me", headers=headers)).status_code == 429


@pytest.mark.parametrize(
    ("outcome", "rejected_with"),
    [(Status(status=403), 403), (Status(status=503, retry_after=1), 503)],
)
async def test_ws_connect_refused_with_a_status(outcome: Status, rejected_with: int) -> None:
    plan = FaultPlan()
    plan.add("ws:connect", outcome)
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            with pytest.raises(ConnectionRejected) as info:
                async with open_socket(mm, bot):
                    pass
            assert info.value.status_code == rejected_with
            async with open_socket(mm, bot) as ws:
                assert (await next_frame(ws))["event"] == "hello"
    assert len(plan.recorded("ws:connect")) == 1


@pytest.mark.parametrize("code", [1006, 4000])
async def test_ws_connect_closed_at_once(code: int) -> None:
    plan = FaultPlan()
    plan.add("ws:connect", CloseSocket(code=code))
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            async with open_socket(mm, bot) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert close_code(info.value) == code
    assert plan.recorded("ws:connect")[0].outcome == CloseSocket(code=code)


async def test_ws_connect_dropped_and_delayed() -> None:
    plan = FaultPlan()
    plan.add("ws:connect", Drop())
    plan.add("ws:connect", Delay(seconds=0.1))
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            # Dropped: the upgrade gets no answer at all, the connection just ends.
            async with await trio.open_tcp_stream("127.0.0.1", mm.port) as stream:
                client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
                await stream.send_all(
                    client.send(Request(host="127.0.0.1", target="/api/v4/websocket"))
                )
                assert await stream.receive_some(65536) == b""
            start = trio.current_time()
            async with open_socket(mm, bot) as ws:
                assert (await next_frame(ws))["event"] == "hello"
            assert trio.current_time() - start >= 0.1
    assert [type(r.outcome) for r in plan.records] == [Drop, Delay]


async def test_ws_refused_for_a_while() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            mm.refuse_websockets_for(60)
            with pytest.raises(ConnectionRejected) as info:
                async with open_socket(mm, bot):
                    pass
            assert info.value.status_code == 503
            mm.refuse_websockets_for(0)
            async with open_socket(mm, bot) as ws:
                assert (await next_frame(ws))["event"] == "hello"


async def test_dropped_events_leave_no_seq_gap() -> None:
    plan = FaultPlan()
    plan.add("ws:event:posted", Drop())
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            dm = mm.emulator.direct_channel(alice, bot)
            async with open_socket(mm, bot) as ws:
                assert (await next_frame(ws))["seq"] == 0
                mm.emulator.post_as(alice, dm.id, "lost")
                kept = mm.emulator.post_as(alice, dm.id, "kept")
                frame = await next_frame(ws)
                assert frame["seq"] == 1
                assert decode_post(frame["data"]["post"]).id == kept.id
    assert plan.recorded("ws:event:*")[0].outcome == Drop()


async def test_a_socket_closed_before_an_event_gets_it_on_resume() -> None:
    plan = FaultPlan()
    plan.add("ws:event:posted", CloseSocket(code=1006))
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            dm = mm.emulator.direct_channel(alice, bot)
            async with open_socket(mm, bot) as ws:
                hello = await next_frame(ws)
                post = mm.emulator.post_as(alice, dm.id, "in flight")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert close_code(info.value) == 1006
            query = f"connection_id={hello['data']['connection_id']}&sequence_number=1"
            async with open_socket(mm, bot, query=query) as ws:
                frame = await next_frame(ws)
                assert (frame["event"], frame["seq"]) == ("posted", 1)
                assert decode_post(frame["data"]["post"]).id == post.id
            assert mm.emulator.connects[-1].resume is Resume.LOSSLESS


async def test_delayed_events_keep_their_order() -> None:
    plan = FaultPlan()
    plan.add("ws:event:typing", Delay(seconds=0.1))
    with trio.fail_after(DEADLINE):
        emulator = MattermostEmulator(plan=plan)
        async with open_mattermost_emulator(emulator=emulator) as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            dm = emulator.direct_channel(alice, bot)
            async with open_socket(mm, bot) as ws:
                await next_frame(ws)
                emulator.perform(emulator.state.publish_typing, alice.id, dm.id)
                emulator.post_as(alice, dm.id, "after typing")
                start = trio.current_time()
                first, second = await next_frame(ws), await next_frame(ws)
                assert [first["event"], second["event"]] == ["typing", "posted"]
                assert trio.current_time() - start >= 0.1


async def test_wait_helpers_wake_on_changes() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            dm = mm.emulator.direct_channel(alice, bot)

            async def bot_replies() -> None:
                await mm.emulator.wait_posted(lambda p: p.user_id == alice.id)
                reply = mm.emulator.post_as(bot, dm.id, "working on it")
                mm.emulator.perform(
                    mm.emulator.state.save_reaction, bot.id, bot.id, reply.id, "eyes"
                )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(bot_replies)
                await trio.testing.wait_all_tasks_blocked()
                await mm.human(alice).post(dm.id, "please do it")
                reply = await mm.wait_post(lambda p: p.user_id == bot.id)
                await mm.emulator.wait_reaction(reply.id, "eyes", user_id=bot.id)
                assert json.loads(mm.emulator.events[-1].data["reaction"])["emoji_name"] == "eyes"
