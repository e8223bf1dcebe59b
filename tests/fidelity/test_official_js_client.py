"""The official Mattermost JavaScript client (Client4 + WebSocketClient) runs a whole bot flow
against the emulator, then goes through a dropped socket and a server restart: see
``client_flow.js`` for every call and check."""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING

import pytest
import trio

from mmthreads.harness.mattermost import Resume, open_mattermost_emulator
from tests.fidelity.conftest import (
    FLOW_DEADLINE,
    HERE,
    FlowResult,
    assert_emulator_state,
    parse_checks,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.fidelity

EXPECTED_CHECKS = (
    "ws_hello",
    "ws_ping_reply",
    "get_me",
    "get_user",
    "get_user_by_username",
    "create_direct_channel",
    "create_direct_channel_again",
    "create_root_post",
    "create_reply",
    "patch_post",
    "add_reaction",
    "get_reactions",
    "upload_file",
    "create_post_with_file",
    "get_file_infos_for_post",
    "get_file",
    "get_post_thread",
    "human_create_post",
    "delete_post",
    "get_posts_since",
    "get_posts_since_latest",
    "ws_posted_root",
    "ws_posted_reply",
    "ws_posted_with_file",
    "ws_posted_human",
    "ws_posted_human_mentions_bot",
    "ws_posted_human_sender",
    "ws_post_edited",
    "ws_reaction_added",
    "ws_post_deleted",
    "ws_single_connection_contiguous_seq",
    "error_unknown_user",
    "error_reply_to_reply",
    "error_message_too_long",
    "error_unknown_emoji",
    "error_no_session",
    "message_limit_in_runes",
    "created",
)

RESUME_CHECKS = (
    "ws_hello",
    "resume_ready",
    "resume_events_delivered",
    "resume_same_connection",
    "resume_seq_contiguous",
    "restart_ready",
    "restart_new_connection",
    "restart_rest_catch_up",
    "created",
)


async def test_official_js_client_bot_flow(node: str, mm_client_dir: Path, run_flow) -> None:
    async with open_mattermost_emulator() as mm:
        bot = mm.create_user("fidelity-bot", bot=True)
        human = mm.create_user("alice")
        result = await run_flow(
            [node, str(HERE / "client_flow.js"), mm.url, bot.token, human.id, human.token],
            {"MM_CLIENT_DIR": str(mm_client_dir)},
        )
        result.assert_ok(EXPECTED_CHECKS)
        created = result.created()
        assert created["bot_id"] == bot.id
        assert_emulator_state(mm.emulator, created, bot_id=bot.id, human_id=human.id)


class _Lines:
    """Splits a process' stdout stream into lines as they arrive."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str | None:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some()
            if not chunk:
                rest, self._buffer = self._buffer, b""
                return rest.decode() if rest else None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


async def test_official_js_client_resumes_and_recovers(
    node: str, mm_client_dir: Path, tmp_path: Path
) -> None:
    """Drop the socket: WebSocketClient resumes on the same connection and gets every event.
    Restart the server: it sees a new connection id, fires its missed-message listeners and
    catches up over REST."""
    async with open_mattermost_emulator() as mm:
        bot = mm.create_user("fidelity-bot", bot=True)
        human = mm.create_user("alice")
        argv = [node, str(HERE / "client_flow.js"), "--resume", mm.url, bot.token]
        argv += [human.id, human.token]
        stdout_lines: list[str] = []
        with (tmp_path / "stderr.txt").open("wb") as stderr, trio.fail_after(FLOW_DEADLINE):
            env = {**os.environ, "MM_CLIENT_DIR": str(mm_client_dir)}
            process = await trio.lowlevel.open_process(
                argv, stdout=subprocess.PIPE, stderr=stderr, env=env
            )
            assert process.stdout is not None
            lines = _Lines(process.stdout)
            while (line := await lines.next()) is not None:
                stdout_lines.append(line)
                check = json.loads(line)["check"] if line.startswith("{") else ""
                if check == "resume_ready":
                    channel = json.loads(line)["detail"]["channel_id"]
                    assert mm.disconnect_all_websockets(1006) == 1
                    mm.emulator.post_as(human, channel, "while away 1")
                    mm.emulator.post_as(human, channel, "while away 2")
                elif check == "restart_ready":
                    await mm.set_unreachable()
                    mm.emulator.forget_connections()
                    mm.emulator.post_as(human, channel, "while restarting")
                    await trio.sleep(0.3)
                    await mm.set_reachable()
            returncode = await process.wait()
        stderr_text = (tmp_path / "stderr.txt").read_text(errors="replace")
        result = FlowResult(
            returncode=returncode,
            checks=parse_checks("\n".join(stdout_lines)),
            stdout="\n".join(stdout_lines),
            stderr=stderr_text,
        )
        result.assert_ok(RESUME_CHECKS)

        # The emulator saw a fresh attachment, a resume of it, then a fresh one after the
        # restart, all authenticated as the bot.
        attachments = [r.resume for r in mm.emulator.connects if r.user_id == bot.id]
        assert attachments[0] is Resume.FRESH, attachments
        assert attachments[1] in (Resume.REPLAYED, Resume.LOSSLESS), attachments
        assert attachments[-1] is Resume.FRESH, attachments
        messages = [p.message for p in mm.posts_in(result.created()["channel_id"])]
        assert messages == ["while away 1", "while away 2", "while restarting"]
