"""Permission and question cards at run time: timeouts, reasons, answers, restarts.

In-memory fakes of the Mattermost and OpenCode clients, and Trio's ``autojump_clock``: every
timeout is asserted at its exact virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec
import pytest
import trio
import trio.testing

from mmthreads.core import agent_events as ae
from mmthreads.core.cards import EXPIRED, PERMISSION_PROP, QUESTION_PROP, REASON_NOT_TAKEN
from mmthreads.errors import AgentNotFound
from mmthreads.mapping_index import MappingIndex
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.bridge import Bridge
from mmthreads.runtime.card_store import decode_cards, encode_cards
from mmthreads.runtime.controls import NO_PERMISSION_PENDING, Controls
from mmthreads.runtime.outbox import MARKER_PROP
from mmthreads.settings import ControlSettings
from mmthreads.wire.mattermost import Post, User
from tests.samples import SPEC_MAPPING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from mmthreads.adapters.mattermost_rest import MattermostClient
    from mmthreads.adapters.opencode import OpenCodeClient

SERVER: Final = "http://opencode.test"
OWNER: Final = SPEC_MAPPING.mattermost_user_id
SESSION: Final = SPEC_MAPPING.session_id
ROOT: Final = SPEC_MAPPING.thread_root_post_id


class FakeChat:
    """The Mattermost calls the cards make, recorded."""

    rate_limit = None  # no X-Ratelimit-* headers seen

    def __init__(self) -> None:
        self.posts: dict[str, str] = {}
        self.props: dict[str, dict[str, object]] = {}
        self.replies: list[str] = []

    async def create_post(
        self,
        channel_id: str,
        message: str,
        *,
        root_id: str = "",
        props: Any = None,
        file_ids: Any = (),
    ) -> Post:
        post_id = f"post{len(self.posts) + 1:022d}"
        self.posts[post_id] = message
        self.props[post_id] = {k: v for k, v in (props or {}).items() if k != MARKER_PROP}
        if not self.props[post_id]:
            self.replies.append(message)
        return Post(id=post_id, channel_id=channel_id, user_id="bot", message=message)

    async def patch_post(
        self, post_id: str, *, message: str | None = None, props: Any = None
    ) -> None:
        if message is not None:
            self.posts[post_id] = message

    async def get_user(self, user_id: str) -> User:
        return User(id=user_id, username="alice")

    def card(self, prop: str = PERMISSION_PROP) -> tuple[str, str]:
        """The (only) card's post id and text."""
        [post_id] = [p for p, props in self.props.items() if prop in props]
        return post_id, self.posts[post_id]


@dataclass
class FakeOpenCode:
    """The OpenCode calls the cards make, recorded; ``pending`` is what the listings answer."""

    server: str = SERVER
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    pending: list[ae.PermissionAsked | ae.QuestionAsked] = field(default_factory=list)
    parents: dict[str, str] = field(default_factory=dict)
    called: trio.Event = field(default_factory=trio.Event)
    gone: bool = False
    legacy: bool = False  # answers through the old route, which takes no reason

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        self.called.set()
        if self.gone:
            raise AgentNotFound(404, "PermissionNotFoundError", "no such request", False)

    async def reply_permission(
        self,
        request_id: str,
        session_id: str,
        directory: str,
        reply: str,
        message: str | None = None,
    ) -> bool:
        self._record("permission", request_id, reply, message)
        return not (self.legacy and message)

    async def reply_question(self, request_id: str, directory: str, answers: Any) -> None:
        self._record("question", request_id, [list(a) for a in answers])

    async def reject_question(self, request_id: str, directory: str) -> None:
        self._record("dismiss", request_id)

    async def list_permissions(self, directory: str) -> list[ae.PermissionAsked]:
        return [r for r in self.pending if isinstance(r, ae.PermissionAsked)]

    async def list_questions(self, directory: str) -> list[ae.QuestionAsked]:
        return [r for r in self.pending if isinstance(r, ae.QuestionAsked)]

    async def get_session(self, session_id: str, directory: str) -> ae.SessionInfo:
        parent = self.parents.get(session_id)
        return ae.SessionInfo(
            session_id=session_id, directory=directory, title="", parent_id=parent
        )

    async def wait_call(self) -> tuple[Any, ...]:
        await self.called.wait()
        self.called = trio.Event()
        return self.calls[-1]


@dataclass
class World:
    chat: FakeChat
    opencode: FakeOpenCode
    bridge: Bridge
    controls: Controls
    nursery: trio.Nursery
    path: Path

    @property
    def client(self) -> OpenCodeClient:
        return cast("OpenCodeClient", self.opencode)

    def restarted(self, settings: ControlSettings | None = None, *, kept: bool = False) -> Controls:
        """New controls (a restarted bridge when ``kept``: they share the cards file)."""
        path = self.path if kept else None
        return Controls(self.bridge, self.nursery, settings=settings or _settings(), path=path)


def permission(request_id: str = "per_1", session_id: str = SESSION) -> ae.PermissionAsked:
    return ae.PermissionAsked(
        server=SERVER,
        directory=SPEC_MAPPING.directory,
        request_id=request_id,
        session_id=session_id,
        permission="bash",
        patterns=("rm -rf build",),
        always=("rm *",),
        metadata={"command": "rm -rf build"},
    )


def question(*, multiple: bool = False, count: int = 1) -> ae.QuestionAsked:
    options = tuple(ae.QuestionOption(label=name) for name in ("Red", "Green", "Blue"))
    return ae.QuestionAsked(
        server=SERVER,
        directory=SPEC_MAPPING.directory,
        request_id="que_1",
        session_id=SESSION,
        questions=tuple(
            ae.Question(question=f"Pick {n}", options=options, multiple=multiple, custom=False)
            for n in range(count)
        ),
    )


def reply(text: str) -> Post:
    return Post(id="reply", channel_id=SPEC_MAPPING.dm_channel_id, user_id=OWNER, message=text)


def _settings(timeout: float = 300.0, window: float = 60.0) -> ControlSettings:
    return ControlSettings(permission_timeout=timeout, reject_reason_timeout=window)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    chat, opencode = FakeChat(), FakeOpenCode()
    index = MappingIndex()
    index.put(SPEC_MAPPING)
    bridge = Bridge(
        chat=cast("MattermostClient", chat),
        bot_user_id="bot",
        max_post_size=16383,
        site_url="https://chat.test",
        index=index,
        store=MappingStore(tmp_path / "threads.json"),
        servers={SERVER: cast("OpenCodeClient", opencode)},
        edit_interval=1.0,
        queue_limit=5,
        inbox_size=8,
    )
    path = tmp_path / "threads.cards.json"
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.outbox.run)
        # In memory: a file write runs in a worker thread, and while it runs the autojump clock
        # may jump to any deadline. The restart tests use the file, without autojump.
        controls = Controls(bridge, nursery, settings=_settings(), path=None)
        yield World(chat, opencode, bridge, controls, nursery, path)
        nursery.cancel_scope.cancel()


async def _settle(world: World) -> None:
    """Let every task run, then wait until the queued Mattermost writes are done."""
    await trio.testing.wait_all_tasks_blocked()
    await world.bridge.outbox.drain()


async def _ask(world: World, request: ae.PermissionAsked | ae.QuestionAsked) -> str:
    world.controls.on_agent_event(world.client, request)
    await _settle(world)
    prop = PERMISSION_PROP if isinstance(request, ae.PermissionAsked) else QUESTION_PROP
    return world.chat.card(prop)[0]


async def test_an_unanswered_permission_is_rejected_after_the_timeout(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    await _ask(world, permission())
    assert await world.opencode.wait_call() == (
        "permission",
        "per_1",
        "reject",
        "No answer from the user within 5 minutes; the request was rejected.",
    )
    assert trio.current_time() - start == 300.0
    await trio.testing.wait_all_tasks_blocked()
    await _settle(world)
    _, text = world.chat.card()
    assert text.endswith(":alarm_clock: **Rejected**: no answer within 5 min.")
    assert world.controls.pending(SESSION) == []


async def test_a_timeout_of_zero_waits_for_ever(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.controls = world.restarted(_settings(timeout=0.0))
    await _ask(world, permission())
    await trio.sleep(500)  # the watchdog's 600 s are the horizon
    assert world.opencode.calls == []
    await _settle(world)
    assert "rejected after" not in world.chat.card()[1]


async def test_a_reject_without_a_reply_goes_out_bare_when_the_window_ends(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    card = await _ask(world, permission())
    pressed = trio.current_time()
    assert await world.controls.react(SPEC_MAPPING, "reject", card, OWNER) is None
    await _settle(world)
    assert "**Rejecting** by @alice: reply in this thread within 1 min" in world.chat.posts[card]
    assert await world.opencode.wait_call() == ("permission", "per_1", "reject", None)
    assert trio.current_time() - pressed == 60.0
    await trio.testing.wait_all_tasks_blocked()
    await _settle(world)
    assert world.chat.posts[card].endswith(":x: **Rejected** by @alice.")


async def test_the_next_reply_is_the_rejects_reason(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    card = await _ask(world, permission())
    await world.controls.react(SPEC_MAPPING, "reject", card, OWNER)
    await trio.sleep(10)
    assert await world.controls.intercept(SESSION, reply("keep the build folder"))
    assert world.opencode.calls == [("permission", "per_1", "reject", "keep the build folder")]
    await _settle(world)
    assert world.chat.posts[card].endswith(
        ":x: **Rejected** by @alice, with this reason:\n> keep the build folder"
    )
    await trio.sleep(500)  # neither the window's end nor the timeout sends anything more
    assert len(world.opencode.calls) == 1
    assert not await world.controls.intercept(SESSION, reply("now a prompt"))


async def test_an_older_server_that_drops_the_reason_is_said_on_the_card(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.opencode.legacy = True
    card = await _ask(world, permission())
    await world.controls.react(SPEC_MAPPING, "reject", card, OWNER)
    assert await world.controls.intercept(SESSION, reply("keep the build folder"))
    await _settle(world)
    text = world.chat.posts[card]
    assert text.endswith(":x: **Rejected** by @alice.\n" + REASON_NOT_TAKEN)
    assert "keep the build folder" not in text


async def test_an_approval_during_the_window_wins(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    card = await _ask(world, permission())
    await world.controls.react(SPEC_MAPPING, "reject", card, OWNER)
    await world.controls.react(SPEC_MAPPING, "once", card, OWNER)
    await trio.sleep(500)
    assert world.opencode.calls == [("permission", "per_1", "once", None)]
    await _settle(world)
    assert world.chat.posts[card].endswith(":white_check_mark: **Approved once** by @alice.")


async def test_a_window_of_zero_rejects_at_once(world: World) -> None:
    world.controls = world.restarted(_settings(window=0.0))
    card = await _ask(world, permission())
    await world.controls.react(SPEC_MAPPING, "reject", card, OWNER)
    assert world.opencode.calls == [("permission", "per_1", "reject", None)]


async def test_a_request_opencode_no_longer_has_is_marked_expired(world: World) -> None:
    card = await _ask(world, permission())
    world.opencode.gone = True
    assert await world.controls.react(SPEC_MAPPING, "always", card, OWNER) is None
    await _settle(world)
    assert world.chat.posts[card].endswith(EXPIRED)
    reaction = await world.controls.react(SPEC_MAPPING, "once", card, OWNER)
    assert reaction == NO_PERMISSION_PENDING


async def test_a_subagents_permission_goes_to_its_parents_thread(world: World) -> None:
    world.opencode.parents["ses_child"] = SESSION
    card = await _ask(world, permission(session_id="ses_child"))
    await world.controls.react(SPEC_MAPPING, "once", ROOT, OWNER)
    assert world.opencode.calls == [("permission", "per_1", "once", None)]
    await _settle(world)
    assert "**Approved once**" in world.chat.posts[card]


@pytest.mark.parametrize(
    ("text", "answer"), [("1, 3", ["Red", "Blue"]), ("3 1", ["Blue", "Red"]), ("2", ["Green"])]
)
async def test_several_numbers_answer_a_multiple_choice(
    world: World, text: str, answer: list[str]
) -> None:
    card = await _ask(world, question(multiple=True))
    assert await world.controls.intercept(SESSION, reply(text))
    assert world.opencode.calls == [("question", "que_1", [answer])]
    await _settle(world)
    assert world.chat.posts[card].endswith(f"**Answered** by @alice: {', '.join(answer)}")


async def test_several_questions_are_answered_line_by_line(world: World) -> None:
    await _ask(world, question(count=2))
    assert await world.controls.intercept(SESSION, reply("1 3"))
    await _settle(world)
    assert world.chat.replies[-1].startswith(
        ":information_source: **Not an answer**: There are 2 questions"
    )
    assert await world.controls.intercept(SESSION, reply("1\nblue"))
    assert world.opencode.calls == [("question", "que_1", [["Red"], ["Blue"]])]


async def test_free_text_is_refused_where_the_question_takes_none(world: World) -> None:
    await _ask(world, question())
    assert await world.controls.intercept(SESSION, reply("purple"))
    await _settle(world)
    assert world.chat.replies == [
        ":information_source: **Not an answer**: This question takes one of its options, by "
        "number. Reply in this thread with the number of an option (1 to 3). React :x: to "
        "dismiss the question."
    ]
    assert world.opencode.calls == []


async def test_an_answer_from_elsewhere_edits_the_card(world: World) -> None:
    card = await _ask(world, question())
    resolved = ae.QuestionResolved(request_id="que_1", session_id=SESSION, answers=(("Red",),))
    world.controls.on_agent_event(world.client, resolved)
    await trio.testing.wait_all_tasks_blocked()
    await _settle(world)
    assert world.chat.posts[card].endswith(
        ":white_check_mark: **Answered** outside this thread: Red"
    )
    assert not await world.controls.intercept(SESSION, reply("a prompt again"))


# --- restarts ------------------------------------------------------------------------------------


async def test_a_restarted_bridge_keeps_the_card_and_its_deadline(
    world: World, mock_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as old:
        world.nursery = old
        world.controls = world.restarted(kept=True)
        card = await _ask(world, permission())
        await world.controls.save()
        [record] = msgspec.json.decode(world.path.read_bytes())["cards"]
        assert (record["post_id"], record["thread"]) == (card, SESSION)
        old.cancel_scope.cancel()  # the old process is gone, and its timer
    # It went down 100 s after the request came (the file keeps wall-clock times).
    [entry] = decode_cards(world.path.read_bytes())
    earlier = msgspec.structs.replace(entry, asked_ms=entry.asked_ms - 100_000)
    world.path.write_bytes(encode_cards([earlier]))
    async with trio.open_nursery() as nursery:
        world.nursery = nursery
        controls = world.restarted(kept=True)
        world.opencode.pending = [permission()]
        await controls.recheck(world.client)
        assert [r.request_id for r in controls.pending(SESSION)] == ["per_1"]
        # The timeout counts from when the request was first seen, not from the restart.
        mock_clock.jump(199)
        await trio.testing.wait_all_tasks_blocked()
        assert world.opencode.calls == []
        mock_clock.jump(2)
        assert (await world.opencode.wait_call())[2:] == (
            "reject",
            "No answer from the user within 5 minutes; the request was rejected.",
        )
        await trio.testing.wait_all_tasks_blocked()
        await _settle(world)
        assert world.chat.posts[card].endswith("no answer within 5 min.")
        await _settle(world)
        assert len([p for p in world.chat.props.values() if PERMISSION_PROP in p]) == 1
        nursery.cancel_scope.cancel()


async def test_a_restarted_bridge_marks_a_lost_request_expired(world: World) -> None:
    world.controls = world.restarted(kept=True)
    card = await _ask(world, permission())
    await world.controls.save()
    controls = world.restarted(kept=True)
    world.opencode.pending = []
    await controls.recheck(world.client)
    await _settle(world)
    assert world.chat.posts[card].endswith(EXPIRED)
    assert world.opencode.calls == []
    assert msgspec.json.decode(world.path.read_bytes())["cards"] == []


async def test_a_pending_request_without_a_card_gets_one(world: World) -> None:
    world.opencode.pending = [question()]
    await world.controls.recheck(world.client)
    await trio.testing.wait_all_tasks_blocked()
    await _settle(world)
    _, text = world.chat.card(QUESTION_PROP)
    assert text.startswith(":question: **The agent asks**")
