"""What the bridge learns from OpenCode, normalised: one vocabulary for every server version.

The OpenCode adapter decodes the server's wire events (``mmthreads.wire.opencode``; names and
shapes drift between releases, see ``reference/opencode-server-api.md`` §5) into these frozen
Structs, so the core never sees a dialect: ``permission.updated`` and ``permission.asked`` both
become ``PermissionAsked``; a text delta becomes ``PartDelta`` whether it came in
``message.part.delta`` or inside ``message.part.updated``.  Events the bridge does not use are not
represented here; the adapter logs and drops them.

Times are epoch milliseconds as OpenCode reports them.  ``server`` names the OpenCode server (its
base URL) and ``directory`` the project instance an event came from, when known.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from mmthreads.core.events import Model

__all__ = [
    "AgentEvent",
    "AgentStreamConnected",
    "AgentStreamLost",
    "FilePart",
    "MessageUpdated",
    "OtherPart",
    "Part",
    "PartDelta",
    "PartUpdated",
    "PatchPart",
    "PermissionAsked",
    "PermissionReplied",
    "Question",
    "QuestionAsked",
    "QuestionOption",
    "QuestionResolved",
    "ReasoningPart",
    "SessionDeleted",
    "SessionError",
    "SessionIdle",
    "SessionInfo",
    "SessionStatus",
    "SessionUpserted",
    "StepFinishPart",
    "StepStartPart",
    "TextPart",
    "Todo",
    "TodoUpdated",
    "Tokens",
    "ToolPart",
]


class SessionInfo(Model, frozen=True, kw_only=True):
    """A session as OpenCode describes it (``Session`` on the wire)."""

    session_id: str
    directory: str
    title: str
    parent_id: str | None = None
    created_ms: int = 0
    updated_ms: int = 0
    #: When the session was archived (``time.archived``), if it was.
    archived_ms: int | None = None


class Tokens(Model, frozen=True, kw_only=True):
    """Token counts of a step or message."""

    input: int = 0
    output: int = 0
    reasoning: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def total(self) -> int:
        """All tokens counted."""
        return self.input + self.output + self.reasoning + self.cache_read + self.cache_write


# --- parts (the pieces of a message) -------------------------------------------------------


class _PartBase(Model, frozen=True, kw_only=True, tag_field="kind", tag=True):
    part_id: str
    message_id: str


class TextPart(_PartBase, frozen=True, kw_only=True, tag="text"):
    """Text the assistant wrote (the full snapshot so far)."""

    text: str
    #: Set by OpenCode on text it injected itself (e.g. file contents), not the model's words.
    synthetic: bool = False


class ReasoningPart(_PartBase, frozen=True, kw_only=True, tag="reasoning"):
    """The model's reasoning (the full snapshot so far)."""

    text: str


class FilePart(_PartBase, frozen=True, kw_only=True, tag="file"):
    """A file in a message (``url`` is usually a ``data:`` URI)."""

    mime: str
    url: str
    filename: str = ""


#: A tool call's state, as OpenCode moves it along.
ToolStatus: TypeAlias = Literal["pending", "running", "completed", "error"]


class ToolPart(_PartBase, frozen=True, kw_only=True, tag="tool"):
    """One tool call."""

    tool: str
    call_id: str
    status: ToolStatus
    #: The tool's own one-line title once known (e.g. the bash command).
    title: str = ""
    input: dict[str, object] = msgspec.field(default_factory=dict)
    output: str = ""
    error: str = ""
    start_ms: int | None = None
    end_ms: int | None = None
    #: Files the completed tool returned (e.g. an image it read), as ``file`` parts.
    attachments: tuple[FilePart, ...] = ()


class StepStartPart(_PartBase, frozen=True, kw_only=True, tag="step-start"):
    """A model step began."""


class StepFinishPart(_PartBase, frozen=True, kw_only=True, tag="step-finish"):
    """A model step ended, with its cost and tokens."""

    reason: str = ""
    cost: float = 0.0
    tokens: Tokens = Tokens()


class PatchPart(_PartBase, frozen=True, kw_only=True, tag="patch"):
    """Files the step changed."""

    files: tuple[str, ...] = ()


class OtherPart(_PartBase, frozen=True, kw_only=True, tag="other"):
    """A part kind the bridge does not render (kept so snapshots stay complete)."""

    type: str


Part: TypeAlias = (
    TextPart
    | ReasoningPart
    | ToolPart
    | StepStartPart
    | StepFinishPart
    | FilePart
    | PatchPart
    | OtherPart
)

# --- events ----------------------------------------------------------------------------------


class _AgentEventBase(Model, frozen=True, kw_only=True, tag_field="type", tag=True):
    server: str = ""
    directory: str = ""


class AgentStreamConnected(_AgentEventBase, frozen=True, kw_only=True):
    """The server's event stream is (again) up; ``version`` from ``/global/health``."""

    version: str = ""


class AgentStreamLost(_AgentEventBase, frozen=True, kw_only=True):
    """The server's event stream broke (ended, went silent, or could not be opened)."""

    reason: str


class SessionUpserted(_AgentEventBase, frozen=True, kw_only=True):
    """A session was created or changed (``session.created`` / ``session.updated``)."""

    info: SessionInfo
    created: bool = False


class SessionDeleted(_AgentEventBase, frozen=True, kw_only=True):
    """``session.deleted``."""

    session_id: str


class SessionStatus(_AgentEventBase, frozen=True, kw_only=True):
    """``session.status``: busy, idle, or retrying after a provider error."""

    session_id: str
    status: Literal["busy", "idle", "retry"]
    attempt: int = 0
    message: str = ""
    next_ms: int | None = None


class SessionIdle(_AgentEventBase, frozen=True, kw_only=True):
    """``session.idle``: the turn is over (the only end signal on pre-1.0.100 servers)."""

    session_id: str


class SessionError(_AgentEventBase, frozen=True, kw_only=True):
    """``session.error``: ``name`` is e.g. ``MessageAbortedError``, ``APIError``."""

    session_id: str
    name: str
    message: str


class MessageUpdated(_AgentEventBase, frozen=True, kw_only=True):
    """``message.updated``: a user or assistant message's metadata."""

    session_id: str
    message_id: str
    role: Literal["user", "assistant"]
    created_ms: int = 0
    completed_ms: int | None = None
    #: ``stop``, ``tool-calls``, … ("" while running, and when aborted).
    finish: str = ""
    cost: float = 0.0
    tokens: Tokens = Tokens()
    model_id: str = ""
    provider_id: str = ""
    error_name: str = ""
    error_message: str = ""


class PartUpdated(_AgentEventBase, frozen=True, kw_only=True):
    """``message.part.updated``: a part's full snapshot (replaces what deltas built)."""

    session_id: str
    part: Part


class PartDelta(_AgentEventBase, frozen=True, kw_only=True):
    """A piece of streamed text appended to a part's ``field`` (``text``)."""

    session_id: str
    message_id: str
    part_id: str
    field: str
    delta: str


class PermissionAsked(_AgentEventBase, frozen=True, kw_only=True):
    """The agent waits for a permission (``permission.asked`` / legacy ``permission.updated``)."""

    request_id: str
    session_id: str
    #: What is asked for: ``bash``, ``edit``, … (legacy: the ``type``).
    permission: str
    #: The exact command or file patterns (legacy: ``pattern``).
    patterns: tuple[str, ...] = ()
    #: What "always" would allow from now on.
    always: tuple[str, ...] = ()
    #: A human title when the server gives one (legacy ``title``).
    title: str = ""
    metadata: dict[str, object] = msgspec.field(default_factory=dict)
    message_id: str = ""
    call_id: str = ""


class PermissionReplied(_AgentEventBase, frozen=True, kw_only=True):
    """A permission was answered (by anyone): ``once``, ``always`` or ``reject``."""

    request_id: str
    session_id: str
    reply: str


class QuestionOption(Model, frozen=True, kw_only=True):
    """One answer a question offers."""

    label: str
    description: str = ""


class Question(Model, frozen=True, kw_only=True):
    """One question of a ``question.asked`` request."""

    question: str
    header: str = ""
    options: tuple[QuestionOption, ...] = ()
    multiple: bool = False
    #: Whether a free-text answer is accepted besides the options.
    custom: bool = True


class QuestionAsked(_AgentEventBase, frozen=True, kw_only=True):
    """The agent asks the user (the question tool) and waits."""

    request_id: str
    session_id: str
    questions: tuple[Question, ...]
    message_id: str = ""
    call_id: str = ""


class QuestionResolved(_AgentEventBase, frozen=True, kw_only=True):
    """A question was replied to or rejected."""

    request_id: str
    session_id: str
    rejected: bool = False
    answers: tuple[tuple[str, ...], ...] = ()


class Todo(Model, frozen=True, kw_only=True):
    """One entry of the session's todo list."""

    content: str
    status: str
    priority: str = ""


class TodoUpdated(_AgentEventBase, frozen=True, kw_only=True):
    """``todo.updated``: the whole list."""

    session_id: str
    todos: tuple[Todo, ...]


AgentEvent: TypeAlias = (
    AgentStreamConnected
    | AgentStreamLost
    | SessionUpserted
    | SessionDeleted
    | SessionStatus
    | SessionIdle
    | SessionError
    | MessageUpdated
    | PartUpdated
    | PartDelta
    | PermissionAsked
    | PermissionReplied
    | QuestionAsked
    | QuestionResolved
    | TodoUpdated
)
