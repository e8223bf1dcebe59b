"""A real ``opencode serve`` killed mid-turn and started again: the threads lose nothing.

The server is this test's own: it is killed with SIGKILL (by the PID of the process the fixture
started), then started again on the same port with the same HOME, so its sessions survive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import trio

from mmthreads.core.render import disconnected_notice, reconnected_notice
from mmthreads.harness.script import Reply, plan_step
from mmthreads.runtime.recovery import INTERRUPTED, TURN_PROMPT_PROP
from tests.real.conftest import DONE, WATCHDOG, is_final, open_bridge, turn_requests

if TYPE_CHECKING:
    from pathlib import Path

    from mmthreads.harness.mattermost import Post
    from tests.real.conftest import Bridge, Server

#: The start of the disconnected notice (the reason that follows varies).
_LOST: Final = disconnected_notice(reason="", queue_limit=0).partition(";")[0]
_RESTORED: Final = reconnected_notice(0).removesuffix(".")


def _notices(bridge: Bridge, root: Post) -> tuple[list[Post], list[Post]]:
    """The thread's disconnected and restored notices."""
    thread = bridge.thread(root.id)
    lost = [p for p in thread if p.user_id == bridge.bot.id and p.message.startswith(_LOST)]
    back = [p for p in thread if p.user_id == bridge.bot.id and _RESTORED in p.message]
    return lost, back


async def test_killing_opencode_mid_turn_and_restarting_it_loses_nothing(
    own_real: Server, project: Path, tmp_path: Path
) -> None:
    with trio.fail_after(WATCHDOG):
        async with open_bridge(own_real.url, tmp_path) as bridge:
            await bridge.start()
            await _kill_mid_turn_and_restart(bridge, own_real, project)


async def _kill_mid_turn_and_restart(bridge: Bridge, server: Server, project: Path) -> None:
    while_down = "posted while OpenCode was down"
    busy_id = await server.create_session(project)
    idle_id = await server.create_session(project)
    busy, idle = await bridge.root_of(busy_id), await bridge.root_of(idle_id)

    await bridge.prompt(busy, "SLOW 3000")  # 30 s of ticks: still running when killed
    await bridge.bot_reply(busy.id, lambda p: p.message.count("tick") >= 3)
    await server.real.kill()
    for root in (busy, idle):
        await bridge.bot_reply(root.id, lambda p: p.message.startswith(_LOST))
    queued = await bridge.prompt(idle, while_down)

    await server.real.start()
    for root in (busy, idle):
        await bridge.bot_reply(root.id, lambda p: _RESTORED in p.message)
    cut = await bridge.bot_reply(busy.id, lambda p: TURN_PROMPT_PROP in p.props and is_final(p))
    answer = await bridge.answer(idle.id, after=queued)

    # The answer cut by the crash keeps what was shown and is closed as interrupted.
    assert cut.message.startswith("tick tick tick")
    assert f"**{INTERRUPTED}**" in cut.message
    assert DONE not in cut.message
    # The prompt posted while down reached OpenCode once, after the restart, and was answered.
    expected = plan_step(while_down, 0)
    assert isinstance(expected, Reply)
    assert answer.message.split("\n\n")[1:-1] == [expected.text]
    assert [r.prompt for r in turn_requests(server, while_down)] == [while_down]
    assert [p.message for p in bridge.thread(idle.id)].count(while_down) == 1
    # Each thread heard of the loss once and of the return once, in that order.
    for root, delivered in ((busy, 0), (idle, 1)):
        lost, back = _notices(bridge, root)
        assert len(lost) == 1, [p.message for p in lost]
        assert [p.message for p in back] == [reconnected_notice(delivered)]
        assert lost[0].create_at <= back[0].create_at
    for session_id in (busy_id, idle_id):
        mapping = await bridge.saved_mapping(session_id)
        while mapping.status.value != "active":
            await trio.sleep(0.01)  # written by the bridge's task right after the notice
            mapping = await bridge.saved_mapping(session_id)
