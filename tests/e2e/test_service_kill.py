"""Killing ``mmthreads run`` mid-answer: the restarted bridge completes the answer from history.

The bridge runs as a real subprocess against the harness servers of this test process; it is
killed with SIGKILL (by the PID of the process this test started) while an answer streams, and
started again once OpenCode finished the turn, or at once while it still runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Final

import pytest
import trio

from mmthreads.core.render import session_id_from_props
from mmthreads.harness.mattermost import open_mattermost_emulator
from mmthreads.harness.opencode import open_opencode_standin
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.recovery import INTERRUPTED, TURN_FINAL_PROP, TURN_PROMPT_PROP
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from pathlib import Path

    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback

#: Seconds between streamed chunks; ``SLOW`` chunks come ten times slower, so ``SLOW 40``
#: streams for about two seconds.
CHUNK_DELAY: Final = 0.005
TICKS: Final = "tick " * 40
_BRIDGE_VARIABLES: Final = (
    "MATTERMOST_URL",
    "MATTERMOST_TOKEN",
    "MATTERMOST_OWNER_USER_ID",
    "MATTERMOST_OWNER_USERNAME",
    "OPENCODE_URL",
    "OPENCODE_SERVER_PASSWORD",
    "MMTHREADS_MAPPING_FILE",
)


async def _start_bridge(env: dict[str, str], mapping_file: Path, log: Path) -> trio.Process:
    command = [
        sys.executable,
        "-m",
        "mmthreads",
        "run",
        "--mapping-file",
        str(mapping_file),
        "--edit-interval",
        "0.05",
    ]
    with log.open("ab") as output:
        return await trio.lowlevel.open_process(
            command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )


def _has_mapping(mapping_file: Path, session_id: str) -> bool:
    if not mapping_file.exists():
        return False
    return MappingStore(mapping_file).load().index.get(session_id) is not None


async def _wait_mapping(mapping_file: Path, session_id: str) -> None:
    # The file is written by the other process: there is nothing to wait on but the file.
    while True:
        if await trio.to_thread.run_sync(_has_mapping, mapping_file, session_id):
            return
        await trio.sleep(0.02)


def _is_answer(post: Post, bot_id: str, root_id: str) -> bool:
    return post.user_id == bot_id and post.root_id == root_id and TURN_PROMPT_PROP in post.props


@pytest.mark.parametrize(
    "turn_over", [True, False], ids=["restart-when-idle", "restart-while-busy"]
)
async def test_sigkill_mid_answer_then_restart_completes_the_answer(
    tmp_path: Path, turn_over: bool
) -> None:
    """Idle: the answer is completed from history; busy: it goes on streaming, same post."""
    project = tmp_path / "proj"
    project.mkdir()
    mapping_file = tmp_path / "threads.json"
    log = tmp_path / "bridge.log"
    process: trio.Process | None = None
    with trio.fail_after(WATCHDOG):
        async with (
            open_mattermost_emulator() as mm,
            open_opencode_standin(directory=str(project), chunk_delay=CHUNK_DELAY) as oc,
        ):
            bot = mm.create_user("mmthreads", bot=True)
            owner = mm.create_user("alice")
            human = mm.human(owner)
            dm = await human.dm_with(bot)
            env = {k: v for k, v in os.environ.items() if k not in _BRIDGE_VARIABLES}
            env.update(
                HOME=str(tmp_path),
                MATTERMOST_URL=mm.url,
                MATTERMOST_TOKEN=bot.token,
                MATTERMOST_OWNER_USER_ID=owner.id,
                OPENCODE_URL=oc.url,
            )
            try:
                process = await _start_bridge(env, mapping_file, log)
                session = oc.create_session(str(project), "long answer")
                root = await mm.wait_post(
                    lambda p: (
                        p.channel_id == dm.id
                        and not p.root_id
                        and session_id_from_props(p.props) == session.id
                    )
                )
                await _wait_mapping(mapping_file, session.id)

                prompt = await human.post(dm.id, "SLOW 40", root_id=root.id)
                await mm.wait_post(
                    lambda p: _is_answer(p, bot.id, root.id) and p.message.count("tick") >= 5
                )
                process.send_signal(signal.SIGKILL)
                await process.wait()
                if turn_over:
                    await oc.standin.wait_idle(session.id)
                cut = next(p for p in mm.thread(root.id) if _is_answer(p, bot.id, root.id))
                assert TICKS not in cut.message  # the bridge really died mid-answer

                process = await _start_bridge(env, mapping_file, log)
                if not turn_over:
                    await oc.standin.wait_idle(session.id)
                answer = await mm.wait_post(
                    lambda p: _is_answer(p, bot.id, root.id) and ":checkered_flag:" in p.message
                )
                assert answer.id == cut.id  # the same post, completed
                assert answer.message.startswith(f"{TICKS}\n\n:checkered_flag: **Done** in ")

                roots = [
                    p
                    for p in mm.posts_in(dm.id)
                    if not p.root_id and session_id_from_props(p.props) is not None
                ]
                assert [p.id for p in roots] == [root.id]
                prompts = [
                    r
                    for r in oc.standin.requests
                    if r.method == "POST" and r.path == f"/session/{session.id}/prompt_async"
                ]
                assert len(prompts) == 1
                thread = mm.thread(root.id)
                assert [p.id for p in thread if _is_answer(p, bot.id, root.id)] == [answer.id]
                assert [p.id for p in thread if "tick" in p.message] == [answer.id]
                assert [p.id for p in thread if p.user_id == owner.id] == [prompt.id]

                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
            finally:
                if process is not None and process.returncode is None:
                    process.kill()
                    with trio.move_on_after(5, shield=True):
                        await process.wait()


async def test_an_answer_cut_by_an_opencode_crash_is_marked_interrupted(
    loopback: Loopback,
) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        bot_id = loopback.bot.id
        session = loopback.oc.create_session(loopback.directory, "crash")
        root = await loopback.root_of(session.id)
        await loopback.human.post(loopback.dm_id, "SLOW 300", root_id=root.id)
        await loopback.bot_reply(
            root.id, lambda p: _is_answer(p, bot_id, root.id) and p.message.count("tick") >= 5
        )
        loopback.oc.stop()  # running turns are lost: the message stays without a finish
        await loopback.oc.start()
        answer = await loopback.bot_reply(
            root.id, lambda p: _is_answer(p, bot_id, root.id) and f"**{INTERRUPTED}**" in p.message
        )
        assert answer.message.startswith("tick tick")
        assert ":checkered_flag:" not in answer.message
        assert answer.props.get(TURN_FINAL_PROP) == "true"
        answers = [p for p in loopback.mm.thread(root.id) if _is_answer(p, bot_id, root.id)]
        assert [p.id for p in answers] == [answer.id]
