"""The session runner: actions in order, queueing, refusals, coalesced streaming, bounds, crashes.

The effects are an in-memory fake that records every call with its virtual time.  Tests run on
``autojump_clock`` and wait for calls or for ``wait_all_tasks_blocked``, never by polling.
"""

from __future__ import annotations

import itertools
import logging
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import pytest
import trio
import trio.testing

from mmthreads.core.actions import (
    DisconnectedNotice,
    EndedNotice,
    OrphanedNotice,
    QueueFullNotice,
    ReconnectedNotice,
    SessionEndedReply,
)
from mmthreads.core.agent_events import (
    FilePart,
    PartDelta,
    PartUpdated,
    SessionStatus,
    TextPart,
)
from mmthreads.core.backoff import RetryPolicy
from mmthreads.core.events import (
    AgentLost,
    AgentRestored,
    PromptReceived,
    SessionEnded,
    SessionGone,
)
from mmthreads.core.states import ThreadState
from mmthreads.core.turn import TurnView
from mmthreads.errors import StreamerGaveUp
from mmthreads.runtime.session_runner import SessionHandle, TurnKey, run_session
from mmthreads.runtime.supervisor import open_supervisor, supervise
from mmthreads.runtime.timers import TimerFired, Timers

if TYPE_CHECKING:
    from trio.testing import MockClock

SESSION: Final = "ses_ab12"
EPOCH_MS: Final = 1_768_000_000_000
LIMIT: Final = 16383


def clock_ms() -> int:
    """The wall clock the runner sees: the virtual clock, from a fixed epoch."""
    return EPOCH_MS + round(trio.current_time() * 1000)


class EffectFailed(Exception):
    """What the fake raises when told to fail."""


class FakeEffects:
    """Records every call as ``(virtual time, method, arguments)``.

    Attributes:
        fail_on: A method name that raises :class:`EffectFailed` when called.
        gate: While not set, ``forward_prompt`` waits for it (a slow OpenCode).
        refused: Post ids whose prompt ``forward_prompt`` reports as not sent.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, tuple[Any, ...]]] = []
        self.fail_on: str | None = None
        self.refused: set[str] = set()
        self.finals: list[bool] = []  # the ``final`` flag of each show_turn call
        self.gate = trio.Event()
        self.gate.set()
        self._changed = trio.Event()

    async def _record(self, method: str, *args: Any) -> None:
        self.calls.append((trio.current_time(), method, args))
        self._changed.set()
        self._changed = trio.Event()
        if method == self.fail_on:
            raise EffectFailed(method)

    async def wait_calls(self, count: int) -> None:
        while len(self.calls) < count:
            await self._changed.wait()

    def made(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The calls without their times."""
        return [(method, args) for _, method, args in self.calls]

    def shows(self) -> list[tuple[float, TurnKey, list[str]]]:
        return [(at, args[1], args[2]) for at, method, args in self.calls if method == "show_turn"]

    async def post_notice(self, session_id: str, notice: Any) -> None:
        await self._record("post_notice", session_id, notice)

    async def reply_to_post(self, session_id: str, post_id: str, notice: Any) -> None:
        await self._record("reply_to_post", session_id, post_id, notice)

    async def forward_prompt(self, session_id: str, prompt: PromptReceived) -> bool:
        await self.gate.wait()
        await self._record("forward_prompt", session_id, prompt)
        return prompt.post_id not in self.refused

    async def persist(self, session_id: str, status: ThreadState, ended_at_ms: int | None) -> None:
        await self._record("persist", session_id, status, ended_at_ms)

    async def show_turn(
        self, session_id: str, turn_key: TurnKey, posts: list[str], *, final: bool = False
    ) -> None:
        self.finals.append(final)
        await self._record("show_turn", session_id, turn_key, posts)

    async def share_files(self, session_id: str, files: Any) -> None:
        await self._record("share_files", session_id, [f.filename for f in files])


def prompt(post_id: str, text: str = "hello") -> PromptReceived:
    return PromptReceived(post_id=post_id, text=text, at_ms=EPOCH_MS)


def delta(text: str, *, message: str = "msg_1", part: str = "prt_1") -> PartDelta:
    return PartDelta(session_id=SESSION, message_id=message, part_id=part, field="text", delta=text)


IDLE: Final = SessionStatus(session_id=SESSION, status="idle")


async def start(nursery: trio.Nursery, effects: FakeEffects, **overrides: Any) -> SessionHandle:
    options: dict[str, Any] = {
        "queue_limit": 2,
        "inbox_size": 8,
        "edit_interval": 1.0,
        "post_limit": LIMIT,
        "clock_ms": clock_ms,
    }
    options.update(overrides)
    handle: SessionHandle = await nursery.start(partial(run_session, SESSION, effects, **options))
    return handle


# --- the handle ----------------------------------------------------------------------------------


async def test_the_handle_arrives_with_a_ready_inbox(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects, inbox_size=3)
    assert repr(handle) == "<SessionHandle session=ses_ab12 state=ACTIVE>"
    assert handle.session_id == SESSION
    assert handle.statistics().max_buffer_size == 3
    handle.send_nowait(AgentLost(reason="stream closed"))  # the inbox exists already
    await effects.wait_calls(2)
    assert repr(handle) == "<SessionHandle session=ses_ab12 state=DISCONNECTED>"
    handle.cancel_scope.cancel()


# --- the lifecycle, carried out through the effects ----------------------------------------------


async def test_actions_are_carried_out_in_order(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects)
    first, late = prompt("p1"), prompt("p2")
    await handle.send(first)
    await handle.send(SessionEnded(reason="deleted", at_ms=EPOCH_MS + 5))
    await handle.send(late)
    await trio.testing.wait_all_tasks_blocked()
    assert effects.made() == [
        ("forward_prompt", (SESSION, first)),
        ("persist", (SESSION, ThreadState.ENDED, EPOCH_MS + 5)),
        ("post_notice", (SESSION, EndedNotice(reason="deleted", ended_at_ms=EPOCH_MS + 5))),
        ("reply_to_post", (SESSION, "p2", SessionEndedReply(state=ThreadState.ENDED))),
    ]
    assert handle.state is ThreadState.ENDED
    handle.cancel_scope.cancel()


async def test_prompts_wait_while_disconnected_and_go_out_on_restore(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects, queue_limit=2)
    p1, p2, p3 = prompt("p1"), prompt("p2"), prompt("p3")
    for item in (AgentLost(reason="stream closed"), p1, p2, p3):
        await handle.send(item)
    await trio.testing.wait_all_tasks_blocked()
    assert effects.made() == [
        ("persist", (SESSION, ThreadState.DISCONNECTED, None)),
        ("post_notice", (SESSION, DisconnectedNotice(reason="stream closed", queue_limit=2))),
        ("reply_to_post", (SESSION, "p3", QueueFullNotice(queue_limit=2))),
    ]
    del effects.calls[:]
    await handle.send(AgentRestored(session_exists=True))
    await trio.testing.wait_all_tasks_blocked()
    assert effects.made() == [
        ("persist", (SESSION, ThreadState.ACTIVE, None)),
        ("forward_prompt", (SESSION, p1)),
        ("forward_prompt", (SESSION, p2)),
        ("post_notice", (SESSION, ReconnectedNotice(delivered=2))),
    ]
    handle.cancel_scope.cancel()


async def test_a_restarted_runner_resumes_from_the_persisted_state(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects, state=ThreadState.DISCONNECTED)
    await handle.send(prompt("p1"))
    await handle.send(AgentRestored(session_exists=False))
    await trio.testing.wait_all_tasks_blocked()
    assert effects.made() == [
        ("persist", (SESSION, ThreadState.ORPHANED, None)),
        ("post_notice", (SESSION, OrphanedNotice(undelivered=("p1",)))),
    ]
    handle.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("state", "event", "level"),
    [
        (ThreadState.ACTIVE, AgentRestored(session_exists=True), logging.INFO),
        (ThreadState.DISCONNECTED, AgentLost(reason="again"), logging.INFO),
        (ThreadState.ENDED, SessionGone(), logging.INFO),
        (ThreadState.DISCONNECTED, SessionGone(), logging.WARNING),
    ],
)
async def test_a_refused_event_is_logged_and_the_runner_goes_on(
    autojump_clock: MockClock,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    state: ThreadState,
    event: Any,
    level: int,
) -> None:
    caplog.set_level(logging.INFO, logger="mmthreads.runtime.session_runner")
    effects = FakeEffects()
    # queue_limit 0: a prompt gets an answer in every state, even while disconnected.
    handle = await start(nursery, effects, state=state, queue_limit=0)
    await handle.send(event)
    await handle.send(prompt("probe"))
    await trio.testing.wait_all_tasks_blocked()
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert record.levelno == level
    assert SESSION in record.getMessage()
    assert state.value in record.getMessage()
    assert handle.state is state
    # The runner went on to the next input: the prompt got what the state calls for.
    expected = "forward_prompt" if state is ThreadState.ACTIVE else "reply_to_post"
    assert [method for method, _ in effects.made()] == [expected]
    handle.cancel_scope.cancel()


# --- streaming the answer ----------------------------------------------------------------------


async def test_edits_are_coalesced_to_one_per_interval_and_the_end_is_shown_at_once(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects, edit_interval=1.0)
    question = prompt("p1")
    await handle.send(question)
    reference = TurnView(SESSION, started_ms=clock_ms())
    words = [f"w{i} " for i in range(35)]
    for i, word in enumerate(words):  # a delta every 0.1 s, from 0.0 to 3.4
        await trio.sleep_until(i / 10)
        reference.apply(delta(word), clock_ms())
        await handle.send(delta(word))
    await trio.sleep_until(3.5)
    reference.apply(IDLE, clock_ms())
    await handle.send(IDLE)
    await trio.testing.wait_all_tasks_blocked()

    shows = effects.shows()
    key = TurnKey(prompt_post_id="p1", started_ms=EPOCH_MS)
    assert [at for at, _, _ in shows] == [0.0, 1.0, 2.0, 3.0, 3.5]
    assert {k for _, k, _ in shows} == {key}
    assert shows[0][2][0].startswith("w0")  # the first output, at once
    assert shows[-1][2] == reference.render(LIMIT)  # the exact final state
    assert "".join(words).strip() in shows[-1][2][0]
    changing = [at for at, _, _ in shows[:-1]]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(changing))

    # The pending edit timer finds nothing new: no call after the final one.
    await trio.sleep(5)
    assert len(effects.shows()) == 5
    handle.cancel_scope.cancel()


async def test_a_late_snapshot_edits_the_finished_turn_and_the_next_turn_waits_its_turn(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects)
    await handle.send(prompt("p1"))
    await handle.send(prompt("p2"))  # forwarded while p1 runs: its turn waits
    await handle.send(delta("first answer"))
    await handle.send(IDLE)
    await trio.sleep(0.5)
    # OpenCode's final snapshot of the first message comes after the idle.
    final = TextPart(part_id="prt_1", message_id="msg_1", text="first answer, corrected")
    await handle.send(PartUpdated(session_id=SESSION, part=final))
    await handle.send(delta("second answer", message="msg_2", part="prt_2"))
    await trio.testing.wait_all_tasks_blocked()
    await trio.sleep(2)

    first = TurnKey(prompt_post_id="p1", started_ms=EPOCH_MS)
    second = TurnKey(prompt_post_id="p2", started_ms=EPOCH_MS)
    shows = [(at, key, posts[0]) for at, key, posts in effects.shows()]
    assert [(at, key) for at, key, _ in shows] == [
        (0.0, first),  # first output
        (0.0, first),  # finished
        (0.5, second),  # the second turn's first output, at once
        (1.5, first),  # the late snapshot, one interval after the last call
    ]
    assert "first answer" in shows[0][2]
    assert "second answer" not in shows[1][2]
    assert shows[2][2].startswith("second answer")
    assert "first answer, corrected" in shows[3][2]
    handle.cancel_scope.cancel()


async def test_agent_events_without_a_turn_are_not_shown(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects)
    await handle.send(delta("typed in the TUI"))
    await handle.send(IDLE)
    await trio.testing.wait_all_tasks_blocked()
    assert effects.calls == []
    handle.cancel_scope.cancel()


async def test_closing_shows_what_waited_for_the_interval_and_ends_the_runner(
    autojump_clock: MockClock,
) -> None:
    effects = FakeEffects()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, effects)
        await handle.send(prompt("p1"))
        await handle.send(delta("one "))
        await trio.sleep(0.5)
        await handle.send(delta("two"))
        await handle.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await handle.send(delta("three"))
        await handle.aclose()  # twice is fine
    # The runner ended by itself, at once, after showing the second delta.
    assert trio.current_time() == 0.5
    assert [(at, posts[0]) for at, _, posts in effects.shows()] == [
        (0.0, "one "),
        (0.5, "one two"),
    ]


async def test_a_cancelled_runner_breaks_the_handle(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects)
    handle.cancel_scope.cancel()
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.BrokenResourceError):
        handle.send_nowait(prompt("p1"))
    await handle.aclose()  # closing a handle whose runner is gone is fine


# --- bounds and failures -----------------------------------------------------------------------


async def test_a_full_inbox_refuses_send_nowait_and_makes_send_wait(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    effects.gate = trio.Event()  # OpenCode is slow: the runner is stuck on the first prompt
    handle = await start(nursery, effects, inbox_size=2)
    prompts = [prompt(f"p{i}") for i in range(5)]
    await handle.send(prompts[0])
    await trio.testing.wait_all_tasks_blocked()  # the runner took p0 and waits on OpenCode
    handle.send_nowait(prompts[1])
    handle.send_nowait(prompts[2])
    with pytest.raises(trio.WouldBlock):
        handle.send_nowait(prompts[3])
    with trio.move_on_after(5) as waited:
        await handle.send(prompts[3])
    assert waited.cancelled_caught
    assert trio.current_time() == 5.0

    effects.gate.set()
    await handle.send(prompts[3])
    await handle.send(prompts[4])
    await trio.testing.wait_all_tasks_blocked()
    assert [args[1] for method, args in effects.made()] == prompts  # nothing lost, in order
    handle.cancel_scope.cancel()


async def test_a_failing_effect_crashes_the_runner(autojump_clock: MockClock) -> None:
    effects = FakeEffects()
    effects.fail_on = "post_notice"
    with pytest.RaisesGroup(pytest.RaisesGroup(EffectFailed)):
        async with trio.open_nursery() as nursery:
            handle = await start(nursery, effects)
            await handle.send(AgentLost(reason="stream closed"))
    assert effects.made()[0] == ("persist", (SESSION, ThreadState.DISCONNECTED, None))
    with pytest.raises(trio.BrokenResourceError):
        await handle.send(prompt("p1"))


async def test_a_crashed_runner_is_restarted_without_disturbing_its_neighbour(
    autojump_clock: MockClock,
) -> None:
    # The wiring the module docstring describes: each attempt starts a runner from the
    # persisted state and publishes its handle.
    handles: dict[str, SessionHandle] = {}
    persisted: dict[str, ThreadState] = {}
    fragile, steady = FakeEffects(), FakeEffects()
    fragile.fail_on = "forward_prompt"

    async def thread_task(name: str, effects: FakeEffects) -> None:
        async with trio.open_nursery() as nursery:
            handles[name] = await start(
                nursery, effects, state=persisted.get(name, ThreadState.ACTIVE)
            )

    policy = RetryPolicy(initial_delay=1.0, max_attempts=3)
    async with open_supervisor() as supervisor:
        await supervisor.start(thread_task, "fragile", fragile, name="fragile", policy=policy)
        await supervisor.start(thread_task, "steady", steady, name="steady", policy=policy)
        await handles["fragile"].send(prompt("boom"))
        await trio.sleep(0.5)
        await handles["steady"].send(prompt("p1"))
        await trio.sleep(1)
        assert supervisor.statistics().restarts == 1
        assert steady.made() == [("forward_prompt", (SESSION, prompt("p1")))]
        # The new runner has a new handle, and works.
        fragile.fail_on = None
        await handles["fragile"].send(prompt("again"))
        await trio.testing.wait_all_tasks_blocked()
        assert fragile.made()[-1] == ("forward_prompt", (SESSION, prompt("again")))
        supervisor.cancel_scope.cancel()


async def test_supervise_restarts_a_runner_at_the_policy_times(autojump_clock: MockClock) -> None:
    effects = FakeEffects()
    effects.fail_on = "persist"
    starts: list[float] = []

    async def thread_task() -> None:
        starts.append(trio.current_time())
        async with trio.open_nursery() as nursery:
            handle = await start(nursery, effects)
            await handle.send(AgentLost(reason="down"))

    policy = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=60.0, max_attempts=2)
    with pytest.raises(StreamerGaveUp):
        await supervise(thread_task, policy=policy, name=SESSION)
    assert starts == [0.0, 1.0, 3.0]


# --- the named timers ----------------------------------------------------------------------------


async def test_timers_fire_at_their_deadline_and_restarting_makes_old_firings_stale(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    fired: list[tuple[float, TimerFired]] = []

    async def deliver(event: TimerFired) -> None:
        fired.append((trio.current_time(), event))

    timers = Timers(nursery, deliver)
    await timers.start_after("a", 2.0)
    await timers.start_at("b", 1.0)
    assert timers.is_pending("a")
    await trio.sleep(1.5)
    await timers.start_after("a", 2.0)  # replaces the first "a": it never fires
    await trio.sleep(10)
    assert [(at, event.name) for at, event in fired] == [(1.0, "b"), (3.5, "a")]
    b, a = (event for _, event in fired)
    assert timers.accept(b)
    assert timers.accept(a)
    assert not timers.accept(a)  # accepted once
    assert not timers.is_pending("a")
    assert repr(timers) == "<Timers pending=[]>"


async def test_a_cancelled_timer_does_not_fire(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    fired: list[TimerFired] = []

    async def deliver(event: TimerFired) -> None:
        fired.append(event)

    timers = Timers(nursery, deliver)
    await timers.start_after("a", 1.0)
    await timers.start_after("b", 1.0)
    assert timers.cancel("a")
    assert not timers.cancel("a")
    timers.cancel_all()
    await trio.sleep(5)
    assert fired == []


async def test_a_prompt_not_sent_opens_no_turn(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    effects.refused.add("p1")
    handle = await start(nursery, effects)
    await handle.send(prompt("p1"))
    await trio.sleep(2)
    await handle.send(prompt("p2"))
    await handle.send(delta("the answer"))
    await handle.send(IDLE)
    await trio.testing.wait_all_tasks_blocked()
    keys = {key for _, key, _ in effects.shows()}
    assert keys == {TurnKey(prompt_post_id="p2", started_ms=EPOCH_MS + 2000)}
    handle.cancel_scope.cancel()


async def test_the_handle_counts_the_queued_prompts(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects)
    await handle.send(AgentLost(reason="stream down"))
    await handle.send(prompt("p1"))
    await handle.send(prompt("p2"))
    await trio.testing.wait_all_tasks_blocked()
    assert handle.queued == 2
    await handle.send(AgentRestored(session_exists=True))
    await trio.testing.wait_all_tasks_blocked()
    assert handle.queued == 0
    handle.cancel_scope.cancel()


async def test_a_resumed_turn_is_shown_at_once_and_takes_the_live_events(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects)
    key = TurnKey(prompt_post_id="p0", started_ms=EPOCH_MS - 5000)
    view = TurnView(SESSION, started_ms=key.started_ms)
    view.apply(delta("before the restart "), EPOCH_MS)
    await handle.resume_turn(key, view)
    await trio.sleep(2)
    await handle.send(delta("and after"))
    await handle.send(IDLE)
    await trio.testing.wait_all_tasks_blocked()
    shows = effects.shows()
    assert [k for _, k, _ in shows] == [key, key, key]
    assert shows[0][2][0].startswith("before the restart")
    assert shows[-1][2][0].startswith("before the restart and after")
    assert "**Done** in 7.0s" in shows[-1][2][0]
    assert effects.finals == [False, False, True]
    handle.cancel_scope.cancel()


async def test_files_of_the_agent_are_shared_once_each(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects, edit_interval=1.0)
    await handle.send(prompt("p1"))
    report = FilePart(
        part_id="prt_f", message_id="msg_1", mime="text/csv", url="data:,a", filename="r.csv"
    )
    await handle.send(delta("here it is"))
    await handle.send(PartUpdated(session_id=SESSION, part=report))
    await handle.send(PartUpdated(session_id=SESSION, part=report))  # the same part again
    await handle.send(IDLE)
    await trio.testing.wait_all_tasks_blocked()
    shared = [args for method, args in effects.made() if method == "share_files"]
    assert shared == [(SESSION, ["r.csv"])]
    shows = [m for m, _ in effects.made() if m in ("show_turn", "share_files")]
    assert shows.index("share_files") > shows.index("show_turn")  # after the answer's post
    handle.cancel_scope.cancel()


async def test_a_turn_that_showed_nothing_is_named_and_can_be_rebuilt(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    effects = FakeEffects()
    handle = await start(nursery, effects)
    await handle.send(prompt("p1"))
    await trio.testing.wait_all_tasks_blocked()
    key = TurnKey(prompt_post_id="p1", started_ms=EPOCH_MS)
    assert handle.unshown_turns() == [key]  # its output went with a dropped stream
    rebuilt = TurnView(SESSION, started_ms=EPOCH_MS)
    rebuilt.apply(delta("all of it"), clock_ms())
    rebuilt.apply(IDLE, clock_ms())
    await handle.resume_turn(key, rebuilt)
    await trio.testing.wait_all_tasks_blocked()
    assert handle.unshown_turns() == []
    ((_, shown_key, posts),) = effects.shows()
    assert shown_key == key
    assert posts == rebuilt.render(LIMIT)
    assert effects.finals == [True]
    handle.cancel_scope.cancel()
