"""The community Python driver (``mattermostdriver``) runs a whole bot flow against the emulator:
see ``driver_flow.py`` for every call and check, including the driver's quirks (a ``{}`` body on
every GET/DELETE, ``/posts/<id>//reactions``, a challenge after a header-authenticated upgrade)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mmthreads.harness.mattermost import open_mattermost_emulator
from tests.fidelity.conftest import HERE, assert_emulator_state

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.fidelity

EXPECTED_CHECKS = (
    "get_me",
    "ws_hello",
    "ws_frames_are_text",
    "get_user",
    "get_user_by_username",
    "create_direct_channel",
    "create_direct_channel_again",
    "create_root_post",
    "create_reply",
    "patch_post",
    "create_reaction",
    "get_reactions_of_post",
    "upload_file",
    "create_post_with_file",
    "get_file_metadata",
    "get_file",
    "get_thread",
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
    "ws_contiguous_seq",
    "ws_no_failed_replies",
    "error_unknown_user",
    "error_reply_to_reply",
    "error_message_too_long",
    "error_no_session",
    "created",
)


@pytest.mark.parametrize("ws_auth", ["header", "challenge"])
async def test_mattermostdriver_bot_flow(mm_python: Path, run_flow, ws_auth: str) -> None:
    """``header``: the upgrade carries the token (``websocket_kw_args``) and the driver's
    challenge is ignored; ``challenge``: the driver's default, authentication by
    ``authentication_challenge`` alone."""
    async with open_mattermost_emulator() as mm:
        bot = mm.create_user("fidelity-bot", bot=True)
        human = mm.create_user("alice")
        argv = [str(mm_python), str(HERE / "driver_flow.py")]
        argv += ["--challenge"] if ws_auth == "challenge" else []
        result = await run_flow([*argv, mm.url, bot.token, human.id, human.token])
        auth_check = {
            "header": "ws_challenge_ignored",
            "challenge": "ws_challenge_reply_after_hello",
        }[ws_auth]
        result.assert_ok((*EXPECTED_CHECKS, auth_check))
        created = result.created()
        assert created["bot_id"] == bot.id
        assert_emulator_state(mm.emulator, created, bot_id=bot.id, human_id=human.id)
        # The driver's quirks really reached the server, and were answered as a client expects.
        double_slash = [r for r in mm.emulator.requests if r.path.endswith("//reactions")]
        assert double_slash, [r.path for r in mm.emulator.requests]
        assert all(r.status == 200 for r in double_slash)
