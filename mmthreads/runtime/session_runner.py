"""One Trio task per session thread: :func:`run_session` and its :class:`SessionHandle`.

Theory of operation
-------------------
A runner owns one thread's :class:`~mmthreads.core.thread_machine.ThreadSession` and the
:class:`~mmthreads.core.turn.TurnView` of each answer being streamed.  Everything reaches it
through one bounded inbox, in order: thread events (lifecycle and prompts), the session's agent
events, and its own timers' firings.  It handles one input at a time, so the machine and the
views need no locks, and carries every action out through an injected :class:`ThreadEffects`
before taking the next input; the service implements the effects against Mattermost and
OpenCode, tests with an in-memory fake.

Turns.  A turn starts when a prompt is really sent (``forward_prompt`` returned True: a refused
prompt opens none, so no answer-less turn can take the next answer).  OpenCode runs one prompt
of a session at a time, so events go to the oldest turn that has not finished; a prompt sent
while another runs waits for it, with events, until the running one goes idle.  The turn
finished last keeps first refusal on later events: OpenCode sends the final snapshot of an
aborted message after the idle, and only that turn's view knows the message (a view refuses
news of messages it has not seen once it finished).  Agent events with no turn to take them
(a run started from the TUI) are not shown.  After a restart or a reconnect,
:meth:`SessionHandle.resume_turn` hands the runner a turn rebuilt from OpenCode's history
(``mmthreads.runtime.recovery``): it replaces the runner's own view of that turn, is shown at
once and, if still running, takes the live events.

Coalescing.  Every change marks a turn as not yet shown.  The first output of a turn is shown at
once (the user sees that the prompt was taken), and so is a turn's finish (the last state is
never left waiting).  Otherwise a thread calls ``show_turn`` at most once per ``edit_interval``:
a change inside the interval starts the ``"edit"`` timer for the interval's end, which shows
whatever is current then.  A render equal to the last one shown is not sent again; the render
of a finished turn is shown with ``final=True``.

Ending.  :meth:`SessionHandle.aclose` lets the runner finish what is queued, show every turn's
last state and return.  Cancelling :attr:`SessionHandle.cancel_scope` stops it at once.  An
exception from the effects ends the runner and propagates (wrapped in an ``ExceptionGroup`` by
the timers' nursery); what was still queued is dropped with a warning.  The caller runs the
runner under :func:`~mmthreads.runtime.supervisor.supervise`, which restarts it: each attempt
builds a new runner from the *persisted* state (the ``state`` argument) and gets a new handle.
The attempt is therefore a small function of the service's that starts the runner with
``nursery.start`` and publishes the handle, e.g.::

    async def thread_task(session_id):
        state = mappings.status_of(session_id)  # what the last PersistMapping wrote
        async with trio.open_nursery() as nursery:
            handles[session_id] = await nursery.start(partial(run_session, session_id, ...))

Backpressure.  The inbox holds ``inbox_size`` inputs.  Callers use :meth:`SessionHandle.send`,
which waits while the inbox is full: a slow thread slows its producer down instead of growing
memory or losing events, and order is kept.  The price is that a producer shared by several
threads (one OpenCode event stream) waits for the slowest; coalescing keeps a runner's work per
event small, so ``inbox_size`` only has to absorb bursts.  :meth:`SessionHandle.send_nowait`
raises ``trio.WouldBlock`` instead; it is only for callers that cannot wait and can deal with
the overflow themselves.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Final, TypeAlias, assert_never

import trio

from mmthreads.core.actions import ForwardPrompt, PersistMapping, PostNotice, ReplyToPost
from mmthreads.core.agent_events import AgentEvent
from mmthreads.core.events import ThreadEvent
from mmthreads.core.states import ThreadState
from mmthreads.core.thread_machine import INITIAL_STATE, ThreadSession
from mmthreads.core.turn import TurnView
from mmthreads.errors import InvalidTransition
from mmthreads.runtime.thread_io import ThreadEffects, ThreadInput, TurnKey, wall_clock_ms
from mmthreads.runtime.timers import TimerFired, Timers

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.core.actions import ThreadAction

__all__ = [
    "EDIT_TIMER",
    "SessionHandle",
    "ThreadEffects",
    "ThreadInput",
    "TurnKey",
    "run_session",
    "wall_clock_ms",
]

logger = logging.getLogger(__name__)

#: The name of the timer that shows coalesced changes at the end of an edit interval.
EDIT_TIMER: Final = "edit"

# Refusals that are expected races rather than bugs: news of the connection that repeats what
# the thread already knows (anything after a final state is benign too).
_BENIGN_RACES: Final = frozenset({("AgentLost", "disconnected"), ("AgentRestored", "active")})


class _Stop:
    """Marks the end of the inputs in the inbox (sent by :meth:`SessionHandle.aclose`)."""


_STOP: Final = _Stop()


class _Resume:
    """A turn rebuilt after a restart, to go on streaming (sent by ``resume_turn``)."""

    __slots__ = ("key", "view")

    def __init__(self, key: TurnKey, view: TurnView) -> None:
        self.key = key
        self.view = view


# What travels in the inbox: the service's inputs, the runner's own timer firings, resumed
# turns, the end.
_Inbound: TypeAlias = ThreadEvent | AgentEvent | TimerFired | _Resume | _Stop


class SessionHandle:
    """The service's side of a running session thread: its inbox and its cancel scope.

    Given by :func:`run_session` through ``task_status`` once the inbox exists.

    Attributes:
        session_id: The session the runner serves.
        cancel_scope: Cancel it to stop the runner at once (nothing more is shown).
    """

    def __init__(
        self,
        session_id: str,
        send: trio.MemorySendChannel[_Inbound],
        cancel_scope: trio.CancelScope,
        machine: ThreadSession,
        runner: _Runner | None = None,
    ) -> None:
        self.session_id: Final = session_id
        self.cancel_scope: Final = cancel_scope
        self._send: Final = send
        self._machine: Final = machine
        self._runner = runner

    def __repr__(self) -> str:
        return f"<SessionHandle session={self.session_id} state={self.state.name}>"

    @property
    def state(self) -> ThreadState:
        """The thread's current state, as the runner's machine has it."""
        return self._machine.state

    def unshown_turns(self) -> list[TurnKey]:
        """The running turns that have shown nothing yet (their first output may have been
        lost with a dropped event stream; the service rebuilds them from history)."""
        if self._runner is None:
            return []
        return [turn.key for turn in self._runner.running if turn.shown_posts is None]

    @property
    def queued(self) -> int:
        """How many prompts wait in the thread for its server to come back (for ``!status``)."""
        return len(self._machine.queued)

    def statistics(self) -> trio.MemoryChannelStatistics:
        """The inbox's statistics (``current_buffer_used`` of ``max_buffer_size``…)."""
        return self._send.statistics()

    async def send(self, item: ThreadInput) -> None:
        """Put ``item`` in the inbox, waiting while it is full (the way to use).

        Raises:
            trio.BrokenResourceError: The runner has ended (or crashed).
            trio.ClosedResourceError: This handle was closed.
        """
        await self._send.send(item)

    def send_nowait(self, item: ThreadInput) -> None:
        """Put ``item`` in the inbox if it has room.

        Raises:
            trio.WouldBlock: The inbox is full; nothing was queued.
            trio.BrokenResourceError: The runner has ended (or crashed).
            trio.ClosedResourceError: This handle was closed.
        """
        self._send.send_nowait(item)

    async def resume_turn(self, key: TurnKey, view: TurnView) -> None:
        """Make a turn rebuilt from OpenCode's history the one that takes the live events.

        Used after a restart or reconnect: the turn's posts (already given to the effects) are
        edited to the view's render at once.  A view still running replaces the runner's own
        view of the turn, if it has one, and takes the live events before any later turn.

        Raises:
            trio.BrokenResourceError: The runner has ended (or crashed).
            trio.ClosedResourceError: This handle was closed.
        """
        await self._send.send(_Resume(key, view))

    async def aclose(self) -> None:
        """Let the runner finish what is queued, show every turn's last state, and return.

        Waits only for room in the inbox, not for the runner; further sends on this handle
        raise ``trio.ClosedResourceError``.  Closing twice, or after the runner ended, is fine.
        """
        try:
            await self._send.send(_STOP)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the runner is gone, or we closed already: nothing left to finish
        finally:
            await self._send.aclose()


async def run_session(
    session_id: str,
    effects: ThreadEffects,
    *,
    state: ThreadState = INITIAL_STATE,
    queue_limit: int,
    inbox_size: int,
    edit_interval: float,
    post_limit: int,
    clock_ms: Callable[[], int] = wall_clock_ms,
    task_status: trio.TaskStatus[SessionHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one session thread until its handle is closed (or the task is cancelled).

    Start it with ``nursery.start``, under a supervisor (see the module docstring).

    Args:
        session_id: The OpenCode session the thread belongs to.
        effects: Carries out the actions and shows the turns.
        state: The state to start in: ``ACTIVE`` for a new thread, the persisted status when a
            thread is re-attached or the runner restarted.
        queue_limit: Prompts kept while disconnected (see ``ThreadSession``).
        inbox_size: How many inputs the inbox holds before senders wait.
        edit_interval: Least seconds between two ``show_turn`` calls of a changing turn.
        post_limit: The server's post limit in runes, for ``TurnView.render``.
        clock_ms: The wall clock in epoch ms (turn start and end times); tests inject one.
        task_status: Receives the :class:`SessionHandle` once the inbox exists.

    Raises:
        ExceptionGroup: Holding what an effect raised; the runner is then gone.
    """
    machine = ThreadSession(session_id, state=state, queue_limit=queue_limit)
    send, receive = trio.open_memory_channel[_Inbound](inbox_size)
    with trio.CancelScope() as scope:
        # The timers deliver through a clone of the send side, so closing the handle's side
        # never cuts a timer off; the runner stops on the _STOP marker instead of end-of-channel.
        async with receive, send.clone() as loopback, trio.open_nursery() as timer_nursery:
            runner = _Runner(
                machine,
                effects,
                Timers(timer_nursery, loopback.send),
                edit_interval=edit_interval,
                post_limit=post_limit,
                clock_ms=clock_ms,
            )
            task_status.started(SessionHandle(session_id, send, scope, machine, runner))
            logger.debug("%r started", runner)
            try:
                await runner.run(receive)
            except Exception:
                dropped = receive.statistics().current_buffer_used
                if dropped:
                    logger.warning("%r failed; %d queued inputs dropped", runner, dropped)
                raise
            finally:
                timer_nursery.cancel_scope.cancel()
            logger.debug("%r finished", runner)


class _Turn:
    """One turn: its view, and what of it was shown last."""

    __slots__ = ("key", "shared_files", "shown_posts", "shown_version", "view")

    def __init__(self, key: TurnKey, view: TurnView) -> None:
        self.key = key
        self.view = view
        self.shown_version = view.version  # a turn without output has nothing to show
        self.shown_posts: list[str] | None = None  # None: never shown
        self.shared_files: set[str] = set()  # part ids of the files put into the thread

    @property
    def dirty(self) -> bool:
        return self.view.version != self.shown_version


class _Runner:
    """The body of :func:`run_session`: handles one input at a time."""

    def __init__(
        self,
        machine: ThreadSession,
        effects: ThreadEffects,
        timers: Timers,
        *,
        edit_interval: float,
        post_limit: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self._machine = machine
        self._session_id = machine.session_id
        self._effects = effects
        self._timers = timers
        self._edit_interval = edit_interval
        self._post_limit = post_limit
        self._clock_ms = clock_ms
        self.running: deque[_Turn] = deque()  # oldest first; the first takes the events
        self._finished: _Turn | None = None  # the turn that finished last
        self._last_show = -float("inf")  # trio time of the last show_turn call

    def __repr__(self) -> str:
        return (
            f"<SessionRunner session={self._session_id} state={self._machine.state.name} "
            f"turns={len(self.running)}>"
        )

    async def run(self, receive: trio.MemoryReceiveChannel[_Inbound]) -> None:
        async for item in receive:
            if isinstance(item, _Stop):
                break
            if isinstance(item, TimerFired):
                if self._timers.accept(item):
                    await self._show_due()
            elif isinstance(item, _Resume):
                await self._resume(item)
            elif isinstance(item, ThreadEvent):
                await self._on_thread_event(item)
            else:
                await self._on_agent_event(item)
        # Closing: nothing may be left unshown, interval or not.
        self._timers.cancel_all()
        for turn in self._turns():
            if turn.dirty:
                await self._show(turn)

    # --- the lifecycle ---------------------------------------------------------------------

    async def _on_thread_event(self, event: ThreadEvent) -> None:
        try:
            actions = self._machine.handle(event)
        except InvalidTransition as exc:
            benign = ThreadState(exc.state).is_final or (exc.event, exc.state) in _BENIGN_RACES
            logger.log(
                logging.INFO if benign else logging.WARNING,
                "session %s: %s refused in state %s; ignored",
                exc.session_id,
                exc.event,
                exc.state,
            )
            return
        for action in actions:
            await self._carry_out(action)

    async def _carry_out(self, action: ThreadAction) -> None:
        match action:
            case PersistMapping(status=status, ended_at_ms=ended_at_ms):
                await self._effects.persist(self._session_id, status, ended_at_ms)
            case PostNotice(notice=notice):
                await self._effects.post_notice(self._session_id, notice)
            case ReplyToPost(post_id=post_id, notice=notice):
                await self._effects.reply_to_post(self._session_id, post_id, notice)
            case ForwardPrompt(prompt=prompt):
                started_ms = self._clock_ms()
                if not await self._effects.forward_prompt(self._session_id, prompt):
                    return  # not sent: no answer will come, so no turn waits for one
                key = TurnKey(prompt_post_id=prompt.post_id, started_ms=started_ms)
                self.running.append(_Turn(key, TurnView(self._session_id, started_ms=started_ms)))
            case _:  # pragma: no cover - mypy proves this unreachable
                assert_never(action)

    # --- the answer ------------------------------------------------------------------------

    async def _on_agent_event(self, event: AgentEvent) -> None:
        now_ms = self._clock_ms()
        last = self._finished
        if last is not None and last.view.apply(event, now_ms):
            await self._show_due()  # a late snapshot: a change like any other
            return
        if not self.running:
            return  # no turn of ours is running (e.g. a prompt typed in the TUI)
        turn = self.running[0]
        if not turn.view.apply(event, now_ms):
            return
        if turn.view.is_finished:
            self.running.popleft()
            # Only the last finished turn is kept; show the one it replaces if a late change
            # of it still waits for the edit timer, so nothing is lost.
            if last is not None and last.dirty:
                await self._show(last)
            self._finished = turn
            await self._show(turn)
        elif turn.shown_posts is None:
            await self._show(turn)  # the first output: at once
        else:
            await self._show_due()

    async def _resume(self, item: _Resume) -> None:
        """Put a turn rebuilt from history in place of what this runner had of it (if any)."""
        turn = _Turn(item.key, item.view)
        # Files of a rebuilt turn may have been put into the thread before: never twice.
        turn.shared_files.update(f.part_id for f in item.view.file_parts())
        for known in self._turns():
            if known.key == item.key:
                turn.view.carry_text(known.view)  # history lacks what was only streamed
        self.running = deque(t for t in self.running if t.key != item.key)
        if self._finished is not None and self._finished.key == item.key:
            self._finished = None
        if turn.view.is_finished:
            last = self._finished
            if last is not None and last.dirty:
                await self._show(last)
            self._finished = turn
        else:
            self.running.appendleft(turn)  # the oldest unfinished turn: it takes the events
        await self._show(turn)  # at once: the posts predate the view

    def _turns(self) -> list[_Turn]:
        finished = [] if self._finished is None else [self._finished]
        return finished + list(self.running)

    async def _show_due(self) -> None:
        """Show the changed turns now if the interval allows, else when it ends."""
        dirty = [turn for turn in self._turns() if turn.dirty]
        if not dirty:
            return
        due = self._last_show + self._edit_interval
        if trio.current_time() >= due:
            self._timers.cancel(EDIT_TIMER)
            for turn in dirty:
                await self._show(turn)
        elif not self._timers.is_pending(EDIT_TIMER):
            await self._timers.start_at(EDIT_TIMER, due)

    async def _show(self, turn: _Turn) -> None:
        turn.shown_version = turn.view.version
        posts = turn.view.render(self._post_limit)
        if posts == turn.shown_posts:
            return  # e.g. a reasoning delta while "thinking…" is shown: nothing to edit
        # The interval runs from the call's start, so calls start at most once per interval
        # however long Mattermost takes to answer.
        self._last_show = trio.current_time()
        final = turn.view.is_finished
        await self._effects.show_turn(self._session_id, turn.key, posts, final=final)
        turn.shown_posts = posts
        files = [f for f in turn.view.file_parts() if f.part_id not in turn.shared_files]
        if files:
            turn.shared_files.update(f.part_id for f in files)
            await self._effects.share_files(self._session_id, files)
