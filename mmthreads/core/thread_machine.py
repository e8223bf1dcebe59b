"""The lifecycle of one session thread: ``THREAD_TRANSITIONS`` and ``ThreadSession``."""

# Theory of operation
# ===================
#
# Every OpenCode session the bridge follows has one Mattermost thread, and every thread has one
# ``ThreadSession``: a small state machine that is told what happened (``core.events``) and
# answers with what to do about it (``core.actions``).  It never does anything itself; the
# session runner owns the I/O, the timers and the retries, and carries the actions out in order.
#
# The states (``ThreadState``; the values are the mapping file's ``status`` strings):
#
# ACTIVE        The session exists and its server is reachable.  Prompts posted in the thread
#               are forwarded at once.  A thread starts here: the "(none) -> active" row of the
#               spec is the construction of a ThreadSession, done by the runner once the
#               thread's root post exists, so it is the machine's initial state and the diagram
#               draws it as ``[*] --> ACTIVE``.
# DISCONNECTED  The bridge lost the session's OpenCode server.  We do not know whether the
#               session still exists, so prompts are neither forwarded nor refused: they wait,
#               in posting order, in a queue bounded by ``queue_limit`` (an unbounded queue
#               would let a long outage grow memory without limit, and a wall of stale prompts
#               is rarely what the user still wants).  A prompt beyond the bound is refused at
#               once, with a reply that says so, rather than dropped silently.
# ENDED         OpenCode ended the session (deleted, archived, or explicitly ended).  Final.
# ORPHANED      The session vanished without the bridge seeing it end.  Final.
#
# Who causes each transition (one row per entry of THREAD_TRANSITIONS):
#
# ACTIVE -> ENDED              SessionEnded: the OpenCode adapter saw the session end.
# ACTIVE -> DISCONNECTED       AgentLost: the adapter's event stream or requests failed.
# ACTIVE -> ORPHANED           SessionGone: the runner looked the session up (typically when
#                              re-attaching threads after a restart) and the server said 404.
# DISCONNECTED -> ACTIVE       AgentRestored(session_exists=True): the server is back and the
#                              adapter found the session; queued prompts are forwarded.
# DISCONNECTED -> ORPHANED     AgentRestored(session_exists=False): the server is back without
#                              the session; queued prompts are reported as not delivered.
#
# The last two rows share one trigger and a guard rather than using two events.  The spec
# describes one occurrence, "connection restored", with two outcomes; the adapter reports the
# fact it observed and the machine decides what it means, and the diagram shows the decision as
# ``[session_exists]`` / ``[!session_exists]``.  Two events would move that decision into the
# adapter.  SessionGone stays separate because it answers a different question: nothing was
# lost, the bridge simply checked.  While disconnected the bridge cannot check, so SessionGone
# is refused there; the runner sends AgentRestored(session_exists=False) instead.
#
# Any other (state, event) pair raises InvalidTransition and changes nothing: no state, no
# queue, no actions.  Some of those are bugs and some are benign races (a second AgentLost while
# already disconnected); the runner, which knows the context, decides and logs.
#
# Why ORPHANED is not ENDED: both are final and both make the thread read-only, but they tell
# the user different things.  ENDED means the session finished as intended, and its final post
# gives the end time (persisted as ``endedAt``).  ORPHANED means the bridge does not know what
# happened: the session might have been deleted while the bridge was down, or the server might
# have lost its storage.  Recording an end time we never observed would be a lie, and keeping
# the distinction in the mapping file lets a later tool (or a person) find threads whose
# sessions disappeared, and tells them that prompts queued meanwhile were lost.
#
# Prompts are not transitions.  A prompt never changes the state, and what it does depends
# only on the state, so it is handled in ``handle`` by a ``match`` on the state instead of four
# reflexive rows in the table.  That keeps THREAD_TRANSITIONS (and the diagram drawn from it)
# exactly the spec's lifecycle, and keeps a prompt from ever raising InvalidTransition.
#
# Actions come out of state-entry callbacks, so each transition yields exactly one notice, and
# every state change starts with a PersistMapping so the file is updated before the user is
# told anything.  The callbacks only append to an outbox that ``handle`` returns; none of them
# triggers another event, so the machine needs no event queue (``queued=False``).

from __future__ import annotations

from typing import TYPE_CHECKING, Final, assert_never

from transitions import Machine, MachineError

from mmthreads.core.actions import (
    DisconnectedNotice,
    EndedNotice,
    ForwardPrompt,
    OrphanedNotice,
    PersistMapping,
    PostNotice,
    QueueFullNotice,
    ReconnectedNotice,
    ReplyToPost,
    SessionEndedReply,
    ThreadAction,
)
from mmthreads.core.events import (
    AgentLost,
    AgentRestored,
    PromptReceived,
    SessionEnded,
    SessionGone,
    ThreadEvent,
)
from mmthreads.core.states import ThreadState
from mmthreads.errors import InvalidTransition

if TYPE_CHECKING:
    from transitions.core import CallbackFunc, TransitionConfigDict

__all__ = [
    "EVENT_TRIGGERS",
    "INITIAL_STATE",
    "THREAD_TRANSITIONS",
    "ThreadSession",
    "session_exists",
]


def session_exists(event: AgentRestored) -> bool:
    """Guard of the restore transitions: whether the server still knows the session.

    Args:
        event: The restore event the adapter reported.

    Returns:
        ``True`` to go back to ``ACTIVE``, ``False`` to go to ``ORPHANED``.
    """
    return event.session_exists


#: The state a new thread starts in (the spec's "(none) -> active" row).
INITIAL_STATE: Final = ThreadState.ACTIVE

#: The thread lifecycle, exactly the spec's table.  Nothing else adds transitions
#: (``auto_transitions=False``), and ``mmthreads statechart`` draws the diagram from this list.
THREAD_TRANSITIONS: Final[list[TransitionConfigDict]] = [
    {"trigger": "session_ended", "source": ThreadState.ACTIVE, "dest": ThreadState.ENDED},
    {"trigger": "agent_lost", "source": ThreadState.ACTIVE, "dest": ThreadState.DISCONNECTED},
    {"trigger": "session_gone", "source": ThreadState.ACTIVE, "dest": ThreadState.ORPHANED},
    {
        "trigger": "agent_restored",
        "source": ThreadState.DISCONNECTED,
        "dest": ThreadState.ACTIVE,
        "conditions": session_exists,
    },
    {
        "trigger": "agent_restored",
        "source": ThreadState.DISCONNECTED,
        "dest": ThreadState.ORPHANED,
        "unless": session_exists,
    },
]

#: The trigger each lifecycle event fires; ``PromptReceived`` is not a transition (see above).
EVENT_TRIGGERS: Final[dict[type[ThreadEvent], str]] = {
    SessionEnded: "session_ended",
    AgentLost: "agent_lost",
    SessionGone: "session_gone",
    AgentRestored: "agent_restored",
}


class _QuietMachine(Machine):
    """A ``Machine`` that skips the model methods the model does not declare, without logging.

    With ``model_override=True`` transitions binds only the methods a model declares, and logs a
    WARNING for every other name (``is_ACTIVE``, ``may_agent_lost``, ``trigger``…): about a
    dozen lines per thread, every time a thread starts.  ``ThreadSession`` declares none of them
    on purpose (``handle`` is its only entry point), so the skip is expected and not worth a log.
    """

    def _checked_assignment(self, model: object, name: str, func: CallbackFunc) -> None:
        if getattr(model, name, None) is not None:
            super()._checked_assignment(model, name, func)


class ThreadSession:
    """The state machine of one session thread.

    Feed it events with :meth:`handle`; carry out the actions it returns, in order.  It is plain
    synchronous code with no I/O and no clock, so the runner owns one per thread and tests drive
    it directly.

    Args:
        session_id: The OpenCode session the thread belongs to (used in errors and ``repr``).
        state: The state to start in: ``ACTIVE`` for a new thread, or the status from the
            mapping file when a thread is re-attached after a restart.  Entering it emits no
            actions; prompts queued before a restart are not kept.
        queue_limit: How many prompts to keep while disconnected (``0`` refuses them all).

    Raises:
        ValueError: If ``queue_limit`` is negative.
    """

    #: The current state; written by the machine (its ``model_attribute``), never by hand.
    state: ThreadState

    def __init__(
        self, session_id: str, *, state: ThreadState = INITIAL_STATE, queue_limit: int
    ) -> None:
        if queue_limit < 0:
            raise ValueError(f"queue_limit must be 0 or more, not {queue_limit}")
        self.session_id: Final = session_id
        self.queue_limit: Final = queue_limit
        self._queue: list[PromptReceived] = []
        self._outbox: list[ThreadAction] = []
        self._machine = _QuietMachine(
            model=self,
            states=ThreadState,
            initial=state,
            transitions=THREAD_TRANSITIONS,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            model_override=True,
            queued=False,
        )
        # Registered here rather than as magic ``on_enter_<STATE>`` methods so that the
        # link between a state and its actions is visible in one place.
        for entered, callback in (
            (ThreadState.ACTIVE, self._entered_active),
            (ThreadState.DISCONNECTED, self._entered_disconnected),
            (ThreadState.ENDED, self._entered_ended),
            (ThreadState.ORPHANED, self._entered_orphaned),
        ):
            self._machine.get_state(entered).add_callback("enter", callback)

    def __repr__(self) -> str:
        return (
            f"<ThreadSession session={self.session_id} state={self.state.name} "
            f"queued={len(self._queue)}>"
        )

    @property
    def queued(self) -> tuple[PromptReceived, ...]:
        """The prompts waiting for the server to come back, oldest first."""
        return tuple(self._queue)

    def handle(self, event: ThreadEvent) -> list[ThreadAction]:
        """Apply one event and return the actions it calls for.

        Args:
            event: What happened to the session or in its thread.

        Returns:
            The actions to carry out, in order (possibly none, e.g. for a queued prompt).

        Raises:
            InvalidTransition: If the current state does not accept ``event``; the state, the
                queue and the pending actions are then unchanged.
        """
        match event:
            case PromptReceived():
                self._prompt(event)
            case SessionEnded() | AgentLost() | AgentRestored() | SessionGone():
                self._fire(EVENT_TRIGGERS[type(event)], event)
            case _:  # pragma: no cover - mypy proves this unreachable
                assert_never(event)
        actions, self._outbox = self._outbox, []
        return actions

    # --- transitions -------------------------------------------------------------------------

    def _fire(self, trigger: str, event: ThreadEvent) -> None:
        try:
            moved = self._machine.events[trigger].trigger(self, event)
        except MachineError:
            # Raised before any callback runs, so there is nothing to roll back.  The library's
            # exception does not leave the core (house rule); ours carries what the runner logs.
            raise InvalidTransition(
                self.session_id, self.state.value, type(event).__name__
            ) from None
        if not moved:  # pragma: no cover - the guards of each trigger cover every case
            # A trigger whose guards all refuse leaves the state alone; that is a refusal too.
            raise InvalidTransition(self.session_id, self.state.value, type(event).__name__)

    def _entered_active(self, event: AgentRestored) -> None:
        # Only reachable from DISCONNECTED: forward what waited, oldest first, then say how
        # many, so the notice follows the prompts it counts.
        waiting, self._queue = self._queue, []
        self._outbox.append(PersistMapping(status=ThreadState.ACTIVE))
        self._outbox.extend(ForwardPrompt(prompt=prompt) for prompt in waiting)
        self._outbox.append(PostNotice(notice=ReconnectedNotice(delivered=len(waiting))))

    def _entered_disconnected(self, event: AgentLost) -> None:
        notice = DisconnectedNotice(reason=event.reason, queue_limit=self.queue_limit)
        self._outbox += [PersistMapping(status=ThreadState.DISCONNECTED), PostNotice(notice=notice)]

    def _entered_ended(self, event: SessionEnded) -> None:
        notice = EndedNotice(reason=event.reason, ended_at_ms=event.at_ms)
        persist = PersistMapping(status=ThreadState.ENDED, ended_at_ms=event.at_ms)
        self._outbox += [persist, PostNotice(notice=notice)]

    def _entered_orphaned(self, event: SessionGone | AgentRestored) -> None:
        # From ACTIVE the queue is empty; from DISCONNECTED it holds prompts that can no longer
        # be delivered.  They go into the one orphaned notice rather than a second post.
        undelivered = tuple(prompt.post_id for prompt in self._queue)
        self._queue.clear()
        notice = OrphanedNotice(undelivered=undelivered)
        self._outbox += [PersistMapping(status=ThreadState.ORPHANED), PostNotice(notice=notice)]

    # --- prompts -----------------------------------------------------------------------------

    def _prompt(self, prompt: PromptReceived) -> None:
        match self.state:
            case ThreadState.ACTIVE:
                self._outbox.append(ForwardPrompt(prompt=prompt))
            case ThreadState.DISCONNECTED:
                if len(self._queue) < self.queue_limit:
                    # Queued silently: the disconnected notice already said prompts would wait.
                    self._queue.append(prompt)
                else:
                    notice = QueueFullNotice(queue_limit=self.queue_limit)
                    self._outbox.append(ReplyToPost(post_id=prompt.post_id, notice=notice))
            case ThreadState.ENDED | ThreadState.ORPHANED:
                reply = SessionEndedReply(state=self.state)
                self._outbox.append(ReplyToPost(post_id=prompt.post_id, notice=reply))
            case _:  # pragma: no cover - mypy proves this unreachable
                assert_never(self.state)
