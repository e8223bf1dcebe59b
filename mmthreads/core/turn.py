"""One assistant turn in a session thread: what OpenCode streams, and the post that shows it.

Theory of operation
-------------------
A *turn* runs from the moment a prompt is sent to a session until the session goes idle. The
runtime creates a :class:`TurnView` when it sends the prompt, feeds it the session's agent events
in stream order with :meth:`TurnView.apply`, and edits the turn's post with
:meth:`TurnView.render` whenever :attr:`TurnView.version` moved and its edit interval allows
(about once a second): the view only says *what* to show, the runtime decides *when*.

The view keeps the latest state of every part it heard of:

* a ``message.part.updated`` snapshot *replaces* the part (the server's full truth, so text that
  deltas built is corrected by it); a ``message.part.delta`` appends to the part's text, creating
  the part if the delta is the first news of it (a view started mid-stream);
* parts are shown sorted by (message id, part id). OpenCode's ids ascend with creation time, so
  this is the session's own order and does not depend on how events of different parts were
  interleaved on the wire;
* parts of *user* messages (the prompt itself, attachments) are stored but never shown. Until a
  message's ``message.updated`` names its role, its parts count as the assistant's: deltas only
  exist for assistant parts, and a late role fixes the view at the next render.

The post shows, in this order: the latest reasoning compactly (see
:func:`~mmthreads.core.turn_render.reasoning_line`); the assistant's text; one line per tool call
and per produced file; the todo list; a transient retry line; and once the turn ended, the
completion line (elapsed, cost, tokens) or the error line (``MessageAbortedError`` reads
"Stopped"). The text section is exactly :meth:`TurnView.text_only`; only a code fence left open
by text still streaming is closed after it, so the lines below never render as code.

The turn is finished at the first idle (``session.status`` idle or ``session.idle``; the second
one OpenCode sends after aborts and errors is ignored). An idle that arrives before anything of
this turn (a busy status, an assistant message or part, an error) belongs to the previous turn
and is ignored. After the end, snapshots of parts and messages already known are still applied:
OpenCode sends the final text snapshot of an aborted message *after* the idle. News of new
messages is ignored then; a later run belongs to a new view.

Costs and tokens are summed per assistant message: the message's own totals
(``message.updated``) when it has any, else the sum of its ``step-finish`` parts, never both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from mmthreads.core.agent_events import (
    FilePart,
    MessageUpdated,
    PartDelta,
    PartUpdated,
    PermissionAsked,
    PermissionReplied,
    QuestionAsked,
    QuestionResolved,
    ReasoningPart,
    SessionError,
    SessionIdle,
    SessionStatus,
    StepFinishPart,
    TextPart,
    Todo,
    TodoUpdated,
    Tokens,
    ToolPart,
)
from mmthreads.core.splitter import split_message
from mmthreads.core.turn_render import (
    WORKING,
    completion_line,
    error_line,
    fence_closer,
    file_line,
    reasoning_line,
    retry_line,
    sum_tokens,
    todo_lines,
    tool_line,
)

if TYPE_CHECKING:
    from mmthreads.core.agent_events import AgentEvent, Part

__all__ = ["TurnView"]

# Blocks of the post are separated by a blank line, so each is its own markdown paragraph.
_BLOCK_SEPARATOR: Final = "\n\n"


class _PartState:
    """The latest snapshot of one part plus the text deltas received since."""

    __slots__ = ("chunks", "part", "text")

    def __init__(self, part: Part) -> None:
        self.part = part
        self.text = part.text if isinstance(part, (TextPart, ReasoningPart)) else ""
        # Deltas are joined lazily: appending to a growing str on each delta would copy it.
        self.chunks: list[str] = []

    def current_text(self) -> str:
        if self.chunks:
            self.text += "".join(self.chunks)
            self.chunks.clear()
        return self.text


class _MessageState:
    """What ``message.updated`` said about one message."""

    __slots__ = ("cost", "error_message", "error_name", "role", "tokens")

    def __init__(self) -> None:
        self.role: str = ""  # "" until a message.updated names it
        self.cost = 0.0
        self.tokens = Tokens()
        self.error_name = ""
        self.error_message = ""


class TurnView:
    """The state of one assistant turn in one session thread, and its rendering.

    Args:
        session_id: The session whose events this view takes; others are ignored.
        started_ms: When the prompt was sent (epoch ms); the completion line counts from here.

    Attributes:
        session_id: As given.
        started_ms: As given.
    """

    def __init__(self, session_id: str, *, started_ms: int) -> None:
        self.session_id: Final = session_id
        self.started_ms: Final = started_ms
        self._parts: dict[str, _PartState] = {}
        self._order: list[_PartState] | None = []  # sorted parts; None when stale
        self._messages: dict[str, _MessageState] = {}
        self._todos: tuple[Todo, ...] = ()
        self._retry: SessionStatus | None = None
        self._error: tuple[str, str, int] | None = None  # name, message, when
        self._waiting: dict[str, tuple[str, str]] = {}  # request id -> (call id, what)
        self._finished_ms: int | None = None
        self._started = False  # whether anything of this turn was seen yet
        self._version = 0

    def __repr__(self) -> str:
        state = "finished" if self.is_finished else "running"
        return (
            f"<TurnView session={self.session_id} {state} parts={len(self._parts)} "
            f"version={self._version}>"
        )

    # --- what the runtime reads -------------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows by one with every change of the view's state.

        The runtime renders (and edits the post) only when this moved since its last edit; a
        change does not always alter the text (a reasoning delta while "thinking…" is shown),
        so it may also skip an edit whose text equals the last one posted.
        """
        return self._version

    @property
    def is_finished(self) -> bool:
        """Whether the session went idle after this turn's prompt."""
        return self._finished_ms is not None

    @property
    def finished_ms(self) -> int | None:
        """When the turn finished (epoch ms), or None while it runs."""
        return self._finished_ms

    def text_only(self) -> str:
        """The assistant's text of this turn, exactly as OpenCode has it.

        Returns:
            The non-empty, non-synthetic text parts of the turn's assistant messages, in order,
            joined by a blank line ("" if there are none).
        """
        return _BLOCK_SEPARATOR.join(self._texts())

    def file_parts(self) -> tuple[FilePart, ...]:
        """The files the assistant produced in this turn, in order (for the runtime to upload):
        its ``file`` parts and the files its completed tools returned."""
        files: list[FilePart] = []
        for state in self._visible():
            part = state.part
            if isinstance(part, FilePart):
                files.append(part)
            elif isinstance(part, ToolPart) and part.status == "completed":
                files.extend(part.attachments)
        return tuple(files)

    def render(self, limit: int) -> list[str]:
        """The turn's posts: the first is edited in place, the others are continuations.

        Args:
            limit: The server's post size limit in runes (``MaxPostSize``).

        Returns:
            One post when the markdown fits, else the numbered parts of
            :func:`~mmthreads.core.splitter.split_message` (fences never broken).

        Raises:
            ValueError: If a split is needed and ``limit`` is below the splitter's minimum.
        """
        return split_message(self.markdown(), limit)

    def markdown(self) -> str:
        """The whole answer as one Mattermost markdown document (never empty)."""
        visible = self._visible()
        blocks: list[str] = []
        reasoning = [s for s in visible if isinstance(s.part, ReasoningPart) and s.current_text()]
        streaming = bool(visible) and isinstance(visible[-1].part, ReasoningPart)
        if streaming and not self.is_finished:
            blocks.append(reasoning_line("", streaming=True))
        elif reasoning:
            blocks.append(reasoning_line(reasoning[-1].current_text(), streaming=False))
        text = self.text_only()
        if text:
            blocks.append(text + fence_closer(text))
        activity = [self._activity_line(s.part) for s in visible]
        if lines := [line for line in activity if line]:
            blocks.append("\n".join(lines))
        if self._todos:
            blocks.append(todo_lines(self._todos))
        if self._retry is not None:
            blocks.append(retry_line(self._retry))
        if self._error is not None:
            name, message, at_ms = self._error
            end = self._finished_ms if self._finished_ms is not None else at_ms
            blocks.append(error_line(name, message, elapsed_ms=end - self.started_ms))
        elif self._finished_ms is not None:
            cost, tokens = self._totals()
            elapsed = self._finished_ms - self.started_ms
            blocks.append(completion_line(elapsed_ms=elapsed, cost=cost, tokens=tokens))
        return _BLOCK_SEPARATOR.join(blocks) or WORKING

    def carry_text(self, previous: TurnView) -> bool:
        """Keep text that ``previous`` streamed but this view's snapshots lack.

        OpenCode stores a text part when it starts (empty) and when it ends; the deltas in
        between are only streamed.  A view rebuilt from the history of a server that died
        mid-answer therefore has the part's empty (or shorter) text, while the view that
        followed the stream has what the user already saw: that text is kept.

        Args:
            previous: The view of the same turn built from the live events.

        Returns:
            Whether any text was carried over (then :attr:`version` grew by one).
        """
        carried = False
        for part_id, old in previous._parts.items():
            state = self._parts.get(part_id)
            if state is None or not isinstance(state.part, (TextPart, ReasoningPart)):
                continue
            if type(old.part) is not type(state.part):
                continue
            mine, theirs = state.current_text(), old.current_text()
            if len(theirs) > len(mine) and theirs.startswith(mine):
                state.chunks.append(theirs[len(mine) :])
                carried = True
        if carried:
            self._version += 1
        return carried

    # --- feeding ------------------------------------------------------------------------------

    def apply(self, event: AgentEvent, now_ms: int) -> bool:
        """Take one agent event of the session, in stream order.

        Args:
            event: Any normalised agent event; those of other sessions, and kinds a turn does
                not show (session updates, stream state), are ignored.
            now_ms: The bridge's current time (epoch ms): when an error or the idle arrived.

        Returns:
            Whether the view changed (then :attr:`version` grew by one).
        """
        # The caller routes by session, but a misrouted event must not leak into this thread.
        if getattr(event, "session_id", None) != self.session_id:
            return False
        changed = self._apply(event, now_ms)
        if changed:
            self._version += 1
        return changed

    def _apply(self, event: AgentEvent, now_ms: int) -> bool:
        match event:
            case PartUpdated(part=part):
                return self._snapshot(part)
            case PartDelta():
                return self._delta(event)
            case MessageUpdated():
                return self._message(event, now_ms)
            case SessionStatus(status="idle") | SessionIdle():
                return self._finish(now_ms)
            case _ if self.is_finished:
                return False  # a later run is another turn's
            case SessionStatus(status="retry"):
                self._started = True
                self._retry = event
                return True
            case SessionStatus():
                self._started = True
                return False
            case SessionError(name=name, message=message):
                self._started = True
                if self._error is not None:
                    return False
                self._error = (name, message, now_ms)
                return True
            case TodoUpdated(todos=todos):
                if todos == self._todos:
                    return False
                self._todos = todos
                return True
            case PermissionAsked(request_id=request, call_id=call) if call:
                self._waiting[request] = (call, "approval")
                return True
            case QuestionAsked(request_id=request, call_id=call) if call:
                self._waiting[request] = (call, "your answer")
                return True
            case PermissionReplied(request_id=request) | QuestionResolved(request_id=request):
                return self._waiting.pop(request, None) is not None
            case _:
                return False

    def _known_after_end(self, message_id: str) -> bool:
        """Whether news of this message is still taken (always before the end)."""
        return (
            not self.is_finished
            or message_id in self._messages
            or any(s.part.message_id == message_id for s in self._parts.values())
        )

    def _snapshot(self, part: Part) -> bool:
        if not self._known_after_end(part.message_id):
            return False
        state = self._parts.get(part.part_id)
        if state is None:
            self._parts[part.part_id] = _PartState(part)
            self._order = None
        elif state.part == part and not state.chunks and state.text == _text_of(part):
            return False  # OpenCode repeats snapshots; nothing to edit
        else:
            self._parts[part.part_id] = _PartState(part)
            self._order = None  # the part may have moved to another message
        self._progress(part.message_id)
        return not self._is_user(part.message_id)

    def _delta(self, event: PartDelta) -> bool:
        if event.field != "text" or not self._known_after_end(event.message_id):
            return False
        state = self._parts.get(event.part_id)
        if state is None:
            # First news of this part (a view started mid-stream): a text part until its
            # snapshot says otherwise.
            part = TextPart(part_id=event.part_id, message_id=event.message_id, text="")
            state = self._parts[event.part_id] = _PartState(part)
            self._order = None
        elif not isinstance(state.part, (TextPart, ReasoningPart)):
            return False
        if not event.delta:
            return False
        state.chunks.append(event.delta)
        self._progress(event.message_id)
        return not self._is_user(event.message_id)

    def _message(self, event: MessageUpdated, now_ms: int) -> bool:
        if not self._known_after_end(event.message_id):
            return False
        state = self._messages.get(event.message_id)
        if state is None:
            state = self._messages[event.message_id] = _MessageState()
        before = (state.role, state.cost, state.tokens, state.error_name, state.error_message)
        state.role = event.role
        state.cost, state.tokens = event.cost, event.tokens
        state.error_name, state.error_message = event.error_name, event.error_message
        if event.role == "assistant":
            self._started = True
            if event.error_name and self._error is None:
                # A session.error may come without a session id (and so not reach this view);
                # the failed message carries the same error.
                self._error = (event.error_name, event.error_message, now_ms)
                return True
        after = (state.role, state.cost, state.tokens, state.error_name, state.error_message)
        return after != before

    def _is_user(self, message_id: str) -> bool:
        message = self._messages.get(message_id)
        return message is not None and message.role == "user"

    def _progress(self, message_id: str) -> None:
        """Output arrived: the turn has started, and a pending retry evidently succeeded."""
        if not self._is_user(message_id):
            self._started = True
            self._retry = None

    def _finish(self, now_ms: int) -> bool:
        if self.is_finished or not self._started:
            return False
        self._finished_ms = now_ms
        self._waiting.clear()
        return True

    # --- reading the state --------------------------------------------------------------------

    def _visible(self) -> list[_PartState]:
        """The parts shown (not of a user message), in the session's order."""
        if self._order is None:
            self._order = sorted(
                self._parts.values(), key=lambda s: (s.part.message_id, s.part.part_id)
            )
        return [s for s in self._order if not self._is_user(s.part.message_id)]

    def _texts(self) -> list[str]:
        return [
            text
            for s in self._visible()
            if isinstance(s.part, TextPart) and not s.part.synthetic and (text := s.current_text())
        ]

    def _activity_line(self, part: Part) -> str:
        if isinstance(part, ToolPart):
            waiting = next(
                (what for call, what in self._waiting.values() if call == part.call_id), ""
            )
            return tool_line(part, waiting=waiting)
        if isinstance(part, FilePart):
            return file_line(part)
        return ""

    def _totals(self) -> tuple[float, Tokens]:
        """Cost and tokens of the turn: message totals, else that message's step-finish parts."""
        steps: dict[str, list[StepFinishPart]] = {}
        for state in self._visible():
            if isinstance(state.part, StepFinishPart):
                steps.setdefault(state.part.message_id, []).append(state.part)
        assistant = [m for m, state in self._messages.items() if state.role == "assistant"]
        costs: list[float] = []
        counts: list[Tokens] = []
        for message_id in dict.fromkeys([*assistant, *steps]):
            message = self._messages.get(message_id)
            if message is not None and (message.cost or message.tokens.total):
                costs.append(message.cost)
                counts.append(message.tokens)
            else:
                costs.extend(step.cost for step in steps.get(message_id, ()))
                counts.extend(step.tokens for step in steps.get(message_id, ()))
        return sum(costs), sum_tokens(counts)


def _text_of(part: Part) -> str:
    return part.text if isinstance(part, (TextPart, ReasoningPart)) else ""
