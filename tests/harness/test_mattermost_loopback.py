"""The emulator over real sockets on 127.0.0.1: httpx for REST, trio-websocket for the socket."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import wsproto
import wsproto.events
from trio_websocket import ConnectionClosed

from mmthreads.harness.mattermost import (
    MattermostEmulator,
    Resume,
    open_mattermost_emulator,
    serve_mattermost_emulator,
)
from mmthreads.harness.mattermost.models import decode_post

from .loopback import DEADLINE, close_code, frames_until, next_frame, open_socket


async def test_rest_headers_and_errors_over_http() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            async with httpx.AsyncClient(base_url=mm.url) as client:
                me = await client.get(
                    "/api/v4/users/me", headers={"Authorization": f"BEARER {bot.token}"}
                )
                assert me.status_code == 200
                assert me.headers["content-type"] == "application/json"
                assert me.json()["id"] == bot.id
                anonymous = await client.get("/api/v4/users/me")
                assert anonymous.status_code == 401
                assert anonymous.headers["content-type"] == "application/json"
                assert anonymous.json()["request_id"] == anonymous.headers["x-request-id"]
                big = await client.post(
                    "/api/v4/posts",
                    content=b'{"message": "' + b"x" * 300_000 + b'"}',
                    headers={"Authorization": f"Bearer {bot.token}"},
                )
                assert big.status_code == 413
                assert big.json()["id"] == "api.context.request_body_too_large.app_error"
            assert [(r.path, r.status) for r in mm.emulator.requests] == [
                ("/api/v4/users/me", 200),
                ("/api/v4/users/me", 401),
                ("/api/v4/posts", 413),
            ]


async def test_serve_with_nursery_start_and_stop() -> None:
    with trio.fail_after(DEADLINE):
        emulator = MattermostEmulator()
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_mattermost_emulator, emulator)
            assert server.emulator is emulator
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/api/v4/system/ping")).json()["status"] == "OK"
            server.stop()


async def test_a_human_and_the_bot_talk_through_rest_and_the_socket() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            human = mm.human(alice)
            async with open_socket(mm, bot) as ws:
                hello = await next_frame(ws)
                assert (hello["event"], hello["seq"]) == ("hello", 0)
                assert list(hello) == ["event", "data", "broadcast", "seq"]
                await mm.wait_websocket_connected(bot.id)
                dm = await human.dm_with(bot)
                post = await human.post(dm.id, "hello bot")
                frames = await frames_until(ws, "posted")
                assert [f["event"] for f in frames] == ["direct_added", "posted"]
                assert [f["seq"] for f in frames] == [1, 2]
                posted = frames[-1]
                assert isinstance(posted["data"]["post"], str)
                assert decode_post(posted["data"]["post"]) == post
                assert json.loads(posted["data"]["mentions"]) == [bot.id]
                # The bot answers in the thread and receives its own event.
                async with httpx.AsyncClient(base_url=mm.url) as client:
                    created = await client.post(
                        "/api/v4/posts",
                        json={"channel_id": dm.id, "message": "hi", "root_id": post.id},
                        headers={"Authorization": f"Bearer {bot.token}"},
                    )
                assert created.status_code == 201
                own = await next_frame(ws)
                assert (own["event"], own["seq"]) == ("posted", 3)
                mine = decode_post(own["data"]["post"])
                assert (mine.user_id, mine.root_id, mine.props) == (
                    bot.id,
                    post.id,
                    {"from_bot": "true"},
                )
                assert "mentions" not in own["data"]
                reply = await mm.wait_post(lambda p: p.root_id == post.id)
                assert reply.id == mine.id
                await human.react(mine.id, "white_check_mark")
                reaction = await next_frame(ws)
                assert reaction["event"] == "reaction_added"
                assert json.loads(reaction["data"]["reaction"])["emoji_name"] == "white_check_mark"


async def test_challenge_auth_gets_hello_before_ok_and_ignores_a_second_challenge() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            async with open_socket(mm) as ws:
                await ws.send_message(json.dumps({"seq": 1, "action": "ping"}))
                refused = await next_frame(ws)
                assert refused["status"] == "FAIL"
                assert refused["seq_reply"] == 1
                assert refused["error"]["id"] == "api.web_socket_router.not_authenticated.app_error"
                challenge = {
                    "seq": 2,
                    "action": "authentication_challenge",
                    "data": {"token": bot.token},
                }
                await ws.send_message(json.dumps(challenge))
                hello = await next_frame(ws)
                assert (hello["event"], hello["seq"]) == ("hello", 0)
                assert await next_frame(ws) == {"status": "OK", "seq_reply": 2}
                await ws.send_message(json.dumps({**challenge, "seq": 3}))
                await ws.send_message(json.dumps({"seq": 4, "action": "ping"}))
                pong = await next_frame(ws)
                assert (pong["status"], pong["seq_reply"], pong["data"]["text"]) == (
                    "OK",
                    4,
                    "pong",
                )
                record = await mm.wait_websocket_connected(bot.id)
                assert record.resume is Resume.FRESH


async def test_a_bad_challenge_closes_the_socket_without_a_word() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            async with open_socket(mm) as ws:
                challenge = {
                    "seq": 1,
                    "action": "authentication_challenge",
                    "data": {"token": "nope"},
                }
                await ws.send_message(json.dumps(challenge))
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert close_code(info.value) == 1006


async def test_unauthenticated_sockets_are_dropped_after_the_auth_timeout() -> None:
    with trio.fail_after(DEADLINE):
        emulator = MattermostEmulator(auth_timeout=0.1)
        async with open_mattermost_emulator(emulator=emulator) as mm:
            async with open_socket(mm) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert close_code(info.value) == 1006


async def test_seq_is_per_connection_and_typing_omits_the_typer() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            dm = mm.emulator.direct_channel(alice, bot)
            async with open_socket(mm, bot) as first, open_socket(mm, bot) as second:
                async with open_socket(mm, alice) as alices:
                    for ws in (first, second, alices):
                        assert (await next_frame(ws))["seq"] == 0
                    typing = {"seq": 1, "action": "user_typing", "data": {"channel_id": dm.id}}
                    await first.send_message(json.dumps(typing))
                    assert await next_frame(first) == {"status": "OK", "seq_reply": 1}
                    seen = await next_frame(alices)
                    assert (seen["event"], seen["seq"]) == ("typing", 1)
                    assert seen["broadcast"]["omit_users"] == {bot.id: True}
                    assert seen["data"] == {"parent_id": "", "user_id": bot.id}
                    mm.emulator.post_as(alice, dm.id, "after typing")
                    for ws, seq in ((first, 1), (second, 1), (alices, 2)):
                        frame = await next_frame(ws)
                        assert (frame["event"], frame["seq"]) == ("posted", seq)


async def test_the_server_sends_ping_frames() -> None:
    with trio.fail_after(DEADLINE):
        emulator = MattermostEmulator(ping_interval=0.05)  # off by default
        async with open_mattermost_emulator(emulator=emulator) as mm:
            bot = mm.create_user("bot", bot=True)
            stream = await trio.open_tcp_stream("127.0.0.1", mm.port)
            async with stream:
                client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
                request = wsproto.events.Request(
                    host="127.0.0.1",
                    target="/api/v4/websocket",
                    extra_headers=[(b"authorization", f"Bearer {bot.token}".encode())],
                )
                await stream.send_all(client.send(request))
                kinds: list[type] = []
                while (
                    kinds.count(wsproto.events.Ping) < 2 or wsproto.events.TextMessage not in kinds
                ):
                    client.receive_data(await stream.receive_some(65536))
                    kinds += [type(e) for e in client.events()]
                assert kinds[0] is wsproto.events.AcceptConnection


async def test_resume_after_an_abrupt_disconnect_is_lossless() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            dm = mm.emulator.direct_channel(alice, bot)
            async with open_socket(mm, bot) as ws:
                hello = await next_frame(ws)
                mm.emulator.post_as(alice, dm.id, "one")
                assert (await next_frame(ws))["seq"] == 1
                assert mm.disconnect_all_websockets() == 1
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert close_code(info.value) == 1006
            missed = mm.emulator.post_as(alice, dm.id, "two, while away")
            connection_id = hello["data"]["connection_id"]
            query = f"connection_id={connection_id}&sequence_number=2"
            async with open_socket(mm, bot, query=query) as ws:
                frame = await next_frame(ws)
                assert (frame["event"], frame["seq"]) == ("posted", 2)
                assert decode_post(frame["data"]["post"]).id == missed.id
            record = await mm.wait_websocket_connected(bot.id, nth=2)
            assert (record.resume, record.connection_id) == (Resume.LOSSLESS, connection_id)
            # Without the token on the upgrade there is no resume: a fresh hello.
            async with open_socket(mm, None, query=query) as ws:
                challenge = {
                    "seq": 1,
                    "action": "authentication_challenge",
                    "data": {"token": bot.token},
                }
                await ws.send_message(json.dumps(challenge))
                fresh = await next_frame(ws)
                assert fresh["event"] == "hello"
                assert fresh["data"]["connection_id"] != connection_id


async def test_restart_keeps_data_and_port_but_loses_connections() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            human = mm.human(alice)
            dm = await human.dm_with(bot)
            post = await human.post(dm.id, "before the restart")
            url = mm.url
            async with open_socket(mm, bot) as ws:
                hello = await next_frame(ws)
                await mm.restart()
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()
            assert mm.url == url
            again = await human.request("GET", f"/posts/{post.id}")
            assert again.json()["message"] == "before the restart"
            old = hello["data"]["connection_id"]
            async with open_socket(mm, bot, query=f"connection_id={old}&sequence_number=1") as ws:
                fresh = await next_frame(ws)
                assert (fresh["event"], fresh["seq"]) == ("hello", 0)
                assert fresh["data"]["connection_id"] != old


async def test_unreachable_means_connection_refused() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            async with httpx.AsyncClient(base_url=mm.url) as client:
                await mm.set_unreachable()
                with pytest.raises(httpx.ConnectError):
                    await client.get("/api/v4/system/ping")
                await mm.set_reachable()
                assert (await client.get("/api/v4/system/ping")).status_code == 200


async def test_human_helpers_upload_edit_and_delete() -> None:
    with trio.fail_after(DEADLINE):
        async with open_mattermost_emulator() as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            human = mm.human(alice)
            dm = await human.dm_with(bot)
            info = await human.upload(dm.id, "log.txt", b"line\n")
            root = await human.post(dm.id, "see file", file_ids=[info.id])
            assert root.metadata.files
            assert root.metadata.files[0].name == "log.txt"
            reply = await human.post(dm.id, "more", root_id=root.id)
            assert [p.id for p in mm.thread(root.id)] == [root.id, reply.id]
            edited = await human.edit(reply.id, "edited")
            assert edited.edit_at > 0
            await human.typing(dm.id, root.id)
            await human.delete(root.id)
            assert mm.posts_in(dm.id) == []
            with pytest.raises(httpx.HTTPStatusError) as info_error:
                await human.react(root.id, "eyes")
            assert info_error.value.response.json()["id"] == "app.post.get.app_error"
