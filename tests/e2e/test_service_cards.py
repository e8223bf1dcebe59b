"""Permission and question cards in a session thread, answered by the owner, across restarts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
import trio

from mmthreads.core.backoff import RetryPolicy
from mmthreads.core.cards import EXPIRED, PERMISSION_PROP, QUESTION_PROP
from mmthreads.core.render import session_id_from_props
from mmthreads.settings import RetryPolicies
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback

_QUICK = RetryPolicy(initial_delay=0.05, max_delay=0.2)


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


async def _card(loopback: Loopback, root_id: str, prop: str) -> Post:
    return await loopback.bot_reply(root_id, lambda p: prop in p.props)


async def _recorded(loopback: Loopback, path_glob: str, since: int = 0) -> Any:
    request = await loopback.oc.standin.wait_request("POST", path_glob, since=since)
    return json.loads(request.body)


async def _edited(loopback: Loopback, card: Post, text: str) -> Post:
    return await loopback.mm.wait_post(lambda p: p.id == card.id and text in p.message)


async def _tools_card(loopback: Loopback, title: str) -> tuple[Post, Post, str]:
    """A thread whose prompt waits for a bash permission: (root, card, request id)."""
    session = loopback.oc.create_session(loopback.directory, title)
    root = await loopback.root_of(session.id)
    await loopback.human.post(loopback.dm_id, "USE_TOOLS", root_id=root.id)
    request = await loopback.oc.standin.wait_permission_asked(session.id)
    card = await _card(loopback, root.id, PERMISSION_PROP)
    assert card.props[PERMISSION_PROP] == request.id
    return root, card, request.id


# --- permissions ---------------------------------------------------------------------------------


async def test_the_card_shows_the_command_and_what_always_allows(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        _, card, _ = await _tools_card(loopback, "card")
        assert card.message.startswith(":lock: **Permission needed: bash**")
        assert "```\necho hello-from-tool\n```" in card.message
        assert ":infinity: would also allow from now on: `echo *`" in card.message
        assert "React :white_check_mark: to approve once" in card.message
        assert "rejected after 30 min" in card.message


@pytest.mark.parametrize(
    ("emoji", "reply", "outcome"),
    [
        ("white_check_mark", "once", ":white_check_mark: **Approved once** by @alice."),
        ("infinity", "always", ":infinity: **Approved always** by @alice."),
    ],
)
async def test_an_approval_answers_opencode_and_edits_the_card(
    loopback: Loopback, emoji: str, reply: str, outcome: str
) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        root, card, request_id = await _tools_card(loopback, reply)
        await loopback.human.react(card.id, emoji)
        body = await _recorded(loopback, f"/permission/{request_id}/reply")
        assert body == {"reply": reply}
        await _edited(loopback, card, outcome)
        answer = await loopback.bot_reply(root.id, _is_done)
        assert "Finished: tools ran OK." in answer.message.split("\n\n")


async def test_a_reaction_elsewhere_in_the_thread_answers_the_card(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        root, card, request_id = await _tools_card(loopback, "elsewhere")
        await loopback.human.react(root.id, "white_check_mark")
        assert await _recorded(loopback, f"/permission/{request_id}/reply") == {"reply": "once"}
        await _edited(loopback, card, "**Approved once** by @alice.")


async def test_a_reject_with_a_reason_lets_the_agent_go_on(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        root, card, request_id = await _tools_card(loopback, "reason")
        await loopback.human.react(card.id, "x")
        await _edited(loopback, card, ":x: **Rejecting** by @alice: reply in this thread within")
        prompts = len(loopback.oc.standin.requests)
        await loopback.human.post(loopback.dm_id, "use printf instead", root_id=root.id)
        body = await _recorded(loopback, f"/permission/{request_id}/reply")
        assert body == {"reply": "reject", "message": "use printf instead"}
        edited = await _edited(loopback, card, ":x: **Rejected** by @alice, with this reason:")
        assert edited.message.endswith("> use printf instead")
        await loopback.bot_reply(root.id, _is_done)
        # The reason was not sent as a prompt.
        later = loopback.oc.standin.requests[prompts:]
        assert not [r for r in later if r.path.endswith("/prompt_async")]


async def test_an_answer_from_elsewhere_edits_the_card(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        _, card, request_id = await _tools_card(loopback, "tui")
        loopback.oc.standin.reply_permission(request_id, "always")  # as the TUI would
        await _edited(loopback, card, ":infinity: **Approved always** outside this thread.")


async def test_a_strangers_reaction_does_nothing(
    loopback: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        root, card, _ = await _tools_card(loopback, "stranger")
        mallory = loopback.mm.create_user("mallory")
        # Only a DM's members can react on a real server unless they are admins; let one in.
        state = loopback.mm.emulator.state
        is_member = state.is_member
        monkeypatch.setattr(
            state, "is_member", lambda user, channel: user == mallory.id or is_member(user, channel)
        )
        await loopback.mm.human(mallory).react(card.id, "white_check_mark")
        # The owner's own reaction afterwards is the first answer OpenCode gets.
        await loopback.human.react(card.id, "infinity")
        body = await _recorded(loopback, "/permission/*/reply")
        assert body == {"reply": "always"}
        await _edited(loopback, card, "**Approved always** by @alice.")
        assert not [p for p in loopback.mm.thread(root.id) if p.message.startswith("No permission")]


async def test_nothing_pending_is_said(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "calm")
        root = await loopback.root_of(session.id)
        await loopback.human.react(root.id, "x")
        reply = await loopback.bot_reply(root.id, lambda p: True)
        assert reply.message == "No permission is waiting for an answer in this thread."


# --- restarts ------------------------------------------------------------------------------------


async def test_a_pending_card_is_found_again_after_a_bridge_restart(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        running = await loopback.start()
        root, card, request_id = await _tools_card(loopback, "restart")
        await running.stop()
        await loopback.start()
        await loopback.human.react(card.id, "white_check_mark")
        assert await _recorded(loopback, f"/permission/{request_id}/reply") == {"reply": "once"}
        await _edited(loopback, card, "**Approved once** by @alice.")
        await loopback.bot_reply(root.id, _is_done)
        cards = [p for p in loopback.mm.thread(root.id) if PERMISSION_PROP in p.props]
        assert [p.id for p in cards] == [card.id]


async def test_a_request_opencode_lost_is_marked_expired(loopback: Loopback) -> None:
    retry = RetryPolicies(mattermost=_QUICK, opencode=_QUICK)
    loopback.settings = msgspec.structs.replace(loopback.settings, retry=retry)
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        _, card, _ = await _tools_card(loopback, "lost")
        loopback.oc.stop()  # a killed OpenCode forgets what it was waiting for
        await loopback.oc.start()
        expired = await _edited(loopback, card, EXPIRED)
        assert "Approved" not in expired.message
        assert not [r for r in loopback.oc.standin.requests if r.path.endswith("/reply")]


# --- questions -----------------------------------------------------------------------------------


async def _question_card(loopback: Loopback, title: str) -> tuple[Post, Post, str]:
    session = loopback.oc.create_session(loopback.directory, title)
    root = await loopback.root_of(session.id)
    await loopback.human.post(loopback.dm_id, "ASK_QUESTION", root_id=root.id)
    request = await loopback.oc.standin.wait_question_asked(session.id)
    card = await _card(loopback, root.id, QUESTION_PROP)
    return root, card, request.id


async def test_the_question_card_numbers_the_options(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        _, card, _ = await _question_card(loopback, "card")
        assert card.message.split("\n\n") == [
            ":question: **The agent asks**",
            "**Colour**\nWhich colour should the button be?\n"
            "1. **Red**: A warm red\n2. **Blue**: A calm blue",
            "Reply in this thread with the number of an option (1 to 2) or your own answer. "
            "React :x: to dismiss the question.",
        ]


@pytest.mark.parametrize(
    ("reply", "answer"), [("2", "Blue"), ("red", "Red"), ("Green, please", "Green, please")]
)
async def test_a_reply_answers_the_question(loopback: Loopback, reply: str, answer: str) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        root, card, request_id = await _question_card(loopback, reply)
        await loopback.human.post(loopback.dm_id, reply, root_id=root.id)
        body = await _recorded(loopback, f"/question/{request_id}/reply")
        assert body == {"answers": [[answer]]}
        await _edited(loopback, card, f":white_check_mark: **Answered** by @alice: {answer}")
        done = await loopback.bot_reply(root.id, _is_done)
        assert f'"Which colour should the button be?"="{answer}"' in done.message


async def test_a_reply_that_is_no_answer_gets_help(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        root, card, request_id = await _question_card(loopback, "help")
        await loopback.human.post(loopback.dm_id, "5", root_id=root.id)
        helped = await loopback.bot_reply(root.id, lambda p: "Not an answer" in p.message)
        assert helped.message.startswith(
            ":information_source: **Not an answer**: There is no option 5. Reply in this thread"
        )
        await loopback.human.post(loopback.dm_id, "1", root_id=root.id)
        assert await _recorded(loopback, f"/question/{request_id}/reply") == {"answers": [["Red"]]}
        await _edited(loopback, card, "**Answered** by @alice: Red")
        assert not [r for r in loopback.oc.standin.requests if r.path.endswith("/prompt_async")][1:]


async def test_a_cross_on_the_question_dismisses_it(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        root, card, request_id = await _question_card(loopback, "dismiss")
        await loopback.human.react(card.id, "x")
        await loopback.oc.standin.wait_request("POST", f"/question/{request_id}/reject")
        await _edited(loopback, card, ":x: **Dismissed** by @alice.")
        session_id = session_id_from_props(root.props)
        assert session_id is not None
        await loopback.oc.standin.wait_idle(session_id)


async def test_a_pending_question_survives_a_bridge_restart(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        running = await loopback.start()
        root, card, request_id = await _question_card(loopback, "restart")
        await running.stop()
        await loopback.start()
        await loopback.human.post(loopback.dm_id, "2", root_id=root.id)
        body = await _recorded(loopback, f"/question/{request_id}/reply")
        assert body == {"answers": [["Blue"]]}
        await _edited(loopback, card, "**Answered** by @alice: Blue")
