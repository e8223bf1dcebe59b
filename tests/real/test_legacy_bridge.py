"""The core scenarios of the bridge against the older ``opencode serve`` (1.0.185).

That release speaks the older dialect (``reference/opencode-server-api.md`` §5): text deltas
inside ``message.part.updated``, ``permission.updated`` answered only on the per-session route
``POST /session/{id}/permissions/{pid}`` (which takes no message), and no ``/global/health``,
``/permission`` or ``/question``.  One legacy server and stub model serve the module
(``legacy_real``); each test has its own emulator, bridge, project directory and sessions, as in
``test_bridge.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from mmthreads.core.cards import REASON_NOT_TAKEN
from mmthreads.harness.real_opencode import OPENCODE_LEGACY_VERSION
from tests.real import test_bridge as scenarios
from tests.real.conftest import (
    WATCHDOG,
    is_final,
    is_permission_card,
    tool_calls_of,
    turn_requests,
    wait_permission_card,
    wait_reason_asked,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.real.conftest import Bridge, Server


async def test_a_new_session_gets_its_thread(
    legacy_bridge: Bridge, legacy_real: Server, project: Path
) -> None:
    assert legacy_real.real.version == OPENCODE_LEGACY_VERSION
    await scenarios.test_a_new_session_gets_its_thread(legacy_bridge, legacy_real, project)


async def test_a_reply_streams_the_scripted_answer_exactly(
    legacy_bridge: Bridge, legacy_real: Server, project: Path
) -> None:
    # The same assertions as on the pinned release: here the deltas ride on part updates.
    await scenarios.test_a_reply_streams_the_scripted_answer_exactly(
        legacy_bridge, legacy_real, project
    )


async def test_an_approved_command_runs_and_a_rejected_one_does_not(
    legacy_bridge: Bridge, legacy_real: Server, project: Path
) -> None:
    # Absolute paths: this release resolves a relative ``touch`` argument against the server's
    # own working directory, not the session's, and would ask ``external_directory`` first.
    bridge = legacy_bridge
    reason = "not in this repository, thanks"
    with trio.fail_after(WATCHDOG):
        session_id = await legacy_real.create_session(project)
        root = await bridge.root_of(session_id)

        approved = f"touch {project / 'approved.txt'}"
        await bridge.prompt(root, f"RUN_BASH {approved}")
        card = await wait_permission_card(bridge, root)
        assert approved in card.message
        await bridge.human.react(card.id, "white_check_mark")
        first = await bridge.answer(root.id)
        assert f"Ran: {approved}" in scenarios.blocks(first)
        assert (project / "approved.txt").exists()

        rejected = f"touch {project / 'rejected.txt'}"
        asked = await bridge.prompt(root, f"RUN_BASH {rejected}")
        card = await wait_permission_card(bridge, root, after=asked)
        assert rejected in card.message
        await bridge.human.react(card.id, "x")
        await wait_reason_asked(bridge, card)
        await bridge.prompt(root, reason)
        second = await bridge.bot_reply(root.id, lambda p: p.id != first.id and is_final(p))
    assert not (project / "rejected.txt").exists()
    # One card per command: the bash ask, nothing else.
    assert len([p for p in bridge.thread(root.id) if is_permission_card(p)]) == 2
    calls = await tool_calls_of(legacy_real, project, session_id)
    assert [(c["state"]["input"]["command"], c["state"]["status"]) for c in calls] == [
        (approved, "completed"),
        (rejected, "error"),
    ]
    assert second.message.startswith(f":no_entry: **bash** `{rejected}`")
    # This release ends the turn on a rejection, and its route takes no message: the model is
    # not asked again, and the reason reaches neither it nor the tool's error.
    assert "rejected permission" in calls[1]["state"]["error"]
    assert reason not in calls[1]["state"]["error"]
    assert [
        r.turn.done_tools for r in turn_requests(legacy_real, f"RUN_BASH {rejected}") if r.turn
    ] == [0]
    assert not turn_requests(legacy_real, reason)
    # The card says so instead of showing a reason that went nowhere.
    settled = next(p for p in bridge.thread(root.id) if p.id == card.id)
    assert settled.message.endswith(REASON_NOT_TAKEN)
    assert reason not in settled.message


async def test_deleting_the_session_ends_the_thread(
    legacy_bridge: Bridge, legacy_real: Server, project: Path
) -> None:
    await scenarios.test_deleting_the_session_ends_the_thread(legacy_bridge, legacy_real, project)
