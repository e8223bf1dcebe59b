"""The agent loop: one Trio task per session with work, playing the script's turns.

A prompt becomes a ``TurnJob`` on its session's queue.  The session's task runs the jobs one by
one; each job is a turn of one or more *steps* (one model call each), decided by
``script.plan_step`` and published by ``steps.py`` (text) and ``toolcalls.py`` (tool calls).
Before each step the turn publishes a new assistant ``message.updated``, the summary
(``session.updated``, ``session.diff``, user ``message.updated``) and ``session.status`` busy;
on the session's first turn, the generated title follows the step's content.

After the last job: busy, idle + ``session.idle``, and the summary again.  A 400 from the
"provider" ends the turn with ``session.error``; a 503 retries (``session.status`` retry) until
aborted.  ``abort`` cancels the running turn (its cleanup publishes ``MessageAbortedError``) and
drops the queued jobs; ``kill_all`` cancels every turn silently, as if the process died.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

import msgspec
import trio

from mmthreads.harness import script
from mmthreads.harness.opencode import tools
from mmthreads.harness.opencode.steps import BUSY, Steps, assistant_info
from mmthreads.harness.opencode.toolcalls import ToolCalls
from mmthreads.harness.opencode.wire import (
    AssistantMessage,
    NamedError,
    ToolPart,
    ToolStateError,
    ToolTime,
    UserMessage,
)
from mmthreads.harness.stub_model.response import title_for

if TYPE_CHECKING:
    from mmthreads.harness.opencode.pending import PendingPrompts
    from mmthreads.harness.opencode.signal import ChangeSignal
    from mmthreads.harness.opencode.state import MessageRecord, OpenCodeState
    from mmthreads.harness.opencode.toolcalls import ToolOutcome
    from mmthreads.harness.opencode.wire import ReasoningPart, Session, TextPart

__all__ = ["Agent", "AgentSettings", "TurnJob"]

logger = logging.getLogger(__name__)


class AgentSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the stand-in's agent paces and names things."""

    #: Seconds between streamed text chunks.
    chunk_delay: float = script.CHUNK_DELAY
    #: Seconds between the chunks of a ``SLOW`` reply (the recorded run showed about 0.5 s).
    slow_chunk_delay: float = 10 * script.CHUNK_DELAY
    #: First retry delay after a 503; doubles per attempt up to ``retry_max_delay``.
    retry_initial_delay: float = 2.0
    retry_max_delay: float = 30.0
    #: The title "generated" after a session's first prompt; ``None``: what the stub model
    #: answers a real server's title request, the prompt's first words.
    generated_title: str | None = None


class TurnJob:
    """One prompt waiting for, or going through, its turn.

    Attributes:
        user: The stored user message.
        prompt: Its text, as the script reads it.
        attachments: Its files, as the script reads them.
        done: Set when the turn ended, failed, was aborted or dropped.
        result: The turn's last assistant message, once done.
    """

    def __init__(
        self, user: MessageRecord, prompt: str, attachments: tuple[script.Attachment, ...]
    ) -> None:
        self.user = user
        self.prompt = prompt
        self.attachments = attachments
        self.done = trio.Event()
        self.result: MessageRecord | None = None

    def __repr__(self) -> str:
        return f"<TurnJob message={self.user.info.id} done={self.done.is_set()}>"


class _Runner:
    """A session's queue and the state of its running turn."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.queue: deque[TurnJob] = deque()
        self.scope: trio.CancelScope | None = None
        self.killed = False
        self.assistant: MessageRecord | None = None
        self.open_parts: dict[str, TextPart | ReasoningPart | ToolPart] = {}
        self.retrying = False


class Agent:
    """Runs the turns of every session.

    Args:
        state: The stand-in's state.
        pending: Its pending permissions and questions.
        signal: Announces state changes (a turn waiting on a human waits on it).
        settings: Pacing and naming.
    """

    def __init__(
        self,
        state: OpenCodeState,
        pending: PendingPrompts,
        signal: ChangeSignal,
        settings: AgentSettings,
    ) -> None:
        self._state = state
        self._pending = pending
        self._signal = signal
        self.settings = settings
        self._tools = ToolCalls(state, pending, signal)
        self._steps = Steps(state, settings)
        self._runners: dict[str, _Runner] = {}

    def __repr__(self) -> str:
        return f"<Agent running={sorted(self._runners)}>"

    def busy(self, session_id: str) -> bool:
        """Whether the session has a running or queued turn."""
        return session_id in self._runners

    def submit(self, nursery: trio.Nursery, session: Session, job: TurnJob) -> None:
        """Queue ``job``; start the session's task if it has none."""
        runner = self._runners.get(session.id)
        if runner is None or runner.killed:
            runner = self._runners[session.id] = _Runner(session.id)
            runner.queue.append(job)
            nursery.start_soon(self._run, runner, name=f"opencode-turns-{session.id}")
        else:
            runner.queue.append(job)
        self._signal.notify()

    def abort(self, session_id: str) -> bool:
        """Abort the running turn and drop the queued ones.  ``True`` if a turn was running."""
        runner = self._runners.get(session_id)
        if runner is None:
            return False
        self._drop_queue(runner)
        # Cancel first: a turn waiting on a permission must see the abort, not the rejection
        # that clearing its pending requests delivers.
        if runner.scope is not None:
            runner.scope.cancel()
        self._pending.clear_session(session_id)
        return True

    def kill_all(self) -> None:
        """Cancel every turn without a word, as a killed process would (``restart``)."""
        for runner in self._runners.values():
            runner.killed = True
            self._drop_queue(runner)
            if runner.scope is not None:
                runner.scope.cancel()

    def _drop_queue(self, runner: _Runner) -> None:
        while runner.queue:
            job = runner.queue.popleft()
            job.done.set()

    # -- the session task ----------------------------------------------------------------------

    async def _run(self, runner: _Runner) -> None:
        last: TurnJob | None = None
        try:
            while runner.queue and not runner.killed:
                job = runner.queue.popleft()
                last = job
                if job.user.info.session_id not in self._state.sessions:
                    job.done.set()  # the session was deleted before its turn began
                    continue
                finished = False
                with trio.CancelScope() as scope:
                    runner.scope = scope
                    finished = await self._turn(runner, job)
                runner.scope = None
                if scope.cancelled_caught and not runner.killed:
                    self._after_abort(runner, job)
                elif finished and not runner.queue and not runner.killed:
                    self._end_of_turns(runner, job)
                job.result = job.result or runner.assistant or self._last_assistant(runner)
                runner.assistant = None
                runner.open_parts.clear()
                runner.retrying = False
                job.done.set()
        except Exception:
            logger.exception("turn of %s failed", runner.session_id)
            raise
        finally:
            if self._runners.get(runner.session_id) is runner:
                del self._runners[runner.session_id]
            if last is not None:
                last.done.set()
            self._signal.notify()

    def _last_assistant(self, runner: _Runner) -> MessageRecord | None:
        records = self._state.messages.get(runner.session_id, [])
        for record in reversed(records):
            if isinstance(record.info, AssistantMessage):
                return record
        return None

    def _end_of_turns(self, runner: _Runner, job: TurnJob) -> None:
        session = self._state.sessions.get(runner.session_id)
        if session is None:
            return
        self._state.set_status(session, BUSY)
        self._state.set_status(session, None)
        self._state.summarize(session, job.user)

    def _after_abort(self, runner: _Runner, job: TurnJob) -> None:
        state = self._state
        session = state.sessions.get(runner.session_id)
        if session is None:
            return
        now = state.clock_ms()
        assistant = runner.assistant
        if runner.retrying:
            # As recorded: aborting a retry completes the message without an error.
            if assistant is not None:
                assistant.info.time.completed = now
                state.message_updated(session, assistant)
            state.set_status(session, None)
            return
        error = NamedError(name="MessageAbortedError", data={"message": "Aborted"})
        state.session_error(session, error)
        state.set_status(session, None)
        if assistant is not None:
            for part in runner.open_parts.values():
                if isinstance(part, ToolPart):
                    start = getattr(part.state, "time", None)
                    begun = start.start if isinstance(start, ToolTime) else now
                    part.state = ToolStateError(
                        input=part.state.input,
                        error=tools.ABORTED_TOOL,
                        time=ToolTime(start=begun, end=now),
                    )
                elif part.time is not None:
                    part.time.end = now
                state.put_part(session, assistant, part)
            assistant_info(assistant).error = error
            assistant.info.time.completed = now
            state.message_updated(session, assistant)
            job.result = assistant
        state.set_status(session, None)

    # -- one turn ------------------------------------------------------------------------------

    async def _turn(self, runner: _Runner, job: TurnJob) -> bool:
        """Play one prompt's turn.  ``False`` if it failed (its events are already out)."""
        state = self._state
        session = state.session(runner.session_id)
        state.set_status(session, BUSY)
        results: list[str] = []
        while True:
            assistant = runner.assistant = state.add_assistant_message(session, job.user)
            state.summarize(session, job.user)
            state.set_status(session, BUSY)
            step = script.plan_step(job.prompt, len(results), job.attachments, tuple(results))
            if isinstance(step, script.Fail):
                if step.status >= 500 or step.status == 429:
                    runner.retrying = True
                    await self._steps.retry_forever(session, step)
                self._steps.fail(session, assistant, step)
                job.result = assistant
                return False
            before = self._steps.start(session, assistant)
            outcome: ToolOutcome | None = None
            if isinstance(step, script.Reply):
                await self._steps.reply(runner.open_parts, session, assistant, step)
            else:
                outcome = await self._tools.call(
                    runner.open_parts, session, assistant, job.user, step
                )
            if self._needs_title(session):
                title = self.settings.generated_title or title_for(job.prompt)
                state.set_title(session, title)
            self._steps.finish(session, assistant, before, outcome)
            runner.assistant = None
            job.result = assistant
            if outcome is None or outcome.halt:
                return True
            state.set_status(session, BUSY)
            results.append(outcome.result)

    def _needs_title(self, session: Session) -> bool:
        placeholder = session.title.startswith(("New session - ", "Child session - "))
        users = [r for r in self._state.messages[session.id] if isinstance(r.info, UserMessage)]
        return placeholder and len(users) == 1
