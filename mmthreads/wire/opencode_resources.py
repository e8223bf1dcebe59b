"""OpenCode resources on the wire: sessions, messages, parts, permissions, questions, todos.

The shapes REST answers and events carry alike (``reference/opencode-server-api.md`` §2,
§3.2).  These are *their* types, so unknown fields are ignored (no ``forbid_unknown_fields``):
the server adds fields in most releases.  Ids are required; everything else has a default, so
an older or newer server that leaves a field out still decodes.  Wire names (``sessionID``,
``providerID``) are given with ``msgspec.field(name=...)``.

``mmthreads.wire.opencode_normalise`` turns these into ``mmthreads.core.agent_events``, so nothing
past the adapter sees a dialect.  Event envelopes and payloads are ``mmthreads.wire.opencode``;
error bodies, health, providers and request bodies are ``mmthreads.wire.opencode_rest``.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CacheTokens",
    "ErrorData",
    "FilePart",
    "LegacyPermission",
    "Message",
    "MessageTime",
    "MessageWithParts",
    "ModelRef",
    "NamedError",
    "PartHead",
    "PartTime",
    "PatchPart",
    "PermissionRequest",
    "QuestionInfo",
    "QuestionOption",
    "QuestionRequest",
    "ReasoningPart",
    "Session",
    "SessionModel",
    "SessionTime",
    "StatusInfo",
    "StepFinishPart",
    "TextPart",
    "Todo",
    "Tokens",
    "ToolAttachment",
    "ToolPart",
    "ToolRef",
    "ToolState",
    "ToolTime",
    "Wire",
]


class Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Policy base of OpenCode's wire types.

    ``frozen``: a decoded payload is a fact.  ``kw_only``: fields with defaults may come first.
    No ``forbid_unknown_fields``: the server grows its shapes between releases.
    """


# --- errors ----------------------------------------------------------------------------------


class ErrorData(Wire, frozen=True, kw_only=True):
    """The ``data`` of a NamedError (``APIError`` adds the provider's status)."""

    message: str = ""
    status_code: int | None = msgspec.field(name="statusCode", default=None)
    is_retryable: bool | None = msgspec.field(name="isRetryable", default=None)


class NamedError(Wire, frozen=True, kw_only=True):
    """An error as sessions and messages carry it: ``{name, data: {message, …}}``."""

    name: str = "UnknownError"
    data: ErrorData = ErrorData()


# --- sessions ----------------------------------------------------------------------------------


class SessionTime(Wire, frozen=True, kw_only=True):
    """Session times, epoch ms (``archived`` is a JSON number, the others integers)."""

    created: float = 0
    updated: float = 0
    archived: float | None = None


class SessionModel(Wire, frozen=True, kw_only=True):
    """The model a session sticks to: ``{id, providerID}`` (not the prompt's shape)."""

    id: str
    provider_id: str = msgspec.field(name="providerID", default="")


class Session(Wire, frozen=True, kw_only=True):
    """A session (reference §2.13)."""

    id: str
    directory: str = ""
    title: str = ""
    parent_id: str | None = msgspec.field(name="parentID", default=None)
    project_id: str = msgspec.field(name="projectID", default="")
    version: str = ""
    agent: str | None = None
    model: SessionModel | None = None
    time: SessionTime = SessionTime()


class StatusInfo(Wire, frozen=True, kw_only=True):
    """A ``SessionStatus``: ``busy``, ``idle`` or ``retry`` (with attempt, message, next)."""

    type: str
    attempt: int = 0
    message: str = ""
    #: Epoch ms of the next attempt.
    next: float | None = None


# --- messages and parts ------------------------------------------------------------------------


class CacheTokens(Wire, frozen=True, kw_only=True):
    """Cache token counts."""

    read: float = 0
    write: float = 0


class Tokens(Wire, frozen=True, kw_only=True):
    """Token counts of a step or message (``total`` since about 1.14)."""

    input: float = 0
    output: float = 0
    reasoning: float = 0
    cache: CacheTokens = CacheTokens()
    total: float | None = None


class MessageTime(Wire, frozen=True, kw_only=True):
    """Message times, epoch ms."""

    created: float = 0
    completed: float | None = None


class ModelRef(Wire, frozen=True, kw_only=True):
    """A user message's model: ``{providerID, modelID}``."""

    provider_id: str = msgspec.field(name="providerID", default="")
    model_id: str = msgspec.field(name="modelID", default="")


class Message(Wire, frozen=True, kw_only=True):
    """A ``UserMessage`` or ``AssistantMessage`` (one Struct: they differ by optional fields)."""

    id: str
    session_id: str = msgspec.field(name="sessionID")
    role: str
    time: MessageTime = MessageTime()
    parent_id: str | None = msgspec.field(name="parentID", default=None)
    model_id: str = msgspec.field(name="modelID", default="")
    provider_id: str = msgspec.field(name="providerID", default="")
    model: ModelRef | None = None
    agent: str = ""
    cost: float = 0.0
    tokens: Tokens | None = None
    #: ``stop``, ``tool-calls``, …; absent while running and when aborted.
    finish: str | None = None
    error: NamedError | None = None


class PartHead(Wire, frozen=True, kw_only=True):
    """What every part has; also how a part of an unknown kind decodes."""

    type: str
    id: str
    session_id: str = msgspec.field(name="sessionID", default="")
    message_id: str = msgspec.field(name="messageID", default="")


class PartTime(Wire, frozen=True, kw_only=True):
    """A text or reasoning part's times, epoch ms."""

    start: float | None = None
    end: float | None = None


class TextPart(PartHead, frozen=True, kw_only=True):
    """``text``."""

    text: str = ""
    synthetic: bool = False
    time: PartTime | None = None


class ReasoningPart(PartHead, frozen=True, kw_only=True):
    """``reasoning``."""

    text: str = ""
    time: PartTime | None = None


class ToolTime(Wire, frozen=True, kw_only=True):
    """A tool call's times, epoch ms."""

    start: float | None = None
    end: float | None = None


class ToolAttachment(Wire, frozen=True, kw_only=True):
    """A file a completed tool returned (``state.attachments[]``, a ``file`` part)."""

    id: str = ""
    mime: str = ""
    url: str = ""
    filename: str | None = None


class ToolState(Wire, frozen=True, kw_only=True):
    """A tool part's ``state`` (pending, running, completed or error; one Struct for all)."""

    status: str = "pending"
    input: dict[str, object] = msgspec.field(default_factory=dict)
    title: str = ""
    output: str = ""
    error: str = ""
    time: ToolTime | None = None
    attachments: list[ToolAttachment] = msgspec.field(default_factory=list)


class ToolPart(PartHead, frozen=True, kw_only=True):
    """``tool``."""

    call_id: str = msgspec.field(name="callID", default="")
    tool: str = ""
    state: ToolState = ToolState()


class StepFinishPart(PartHead, frozen=True, kw_only=True):
    """``step-finish``."""

    reason: str = ""
    cost: float = 0.0
    tokens: Tokens = Tokens()


class FilePart(PartHead, frozen=True, kw_only=True):
    """``file`` (``url`` is usually a ``data:`` URI)."""

    mime: str = ""
    url: str = ""
    filename: str | None = None


class PatchPart(PartHead, frozen=True, kw_only=True):
    """``patch``: the files a step changed."""

    hash: str = ""
    files: list[str] = msgspec.field(default_factory=list)


class MessageWithParts(Wire, frozen=True, kw_only=True):
    """An entry of ``GET /session/{id}/message``; parts stay raw until their kind is known."""

    info: Message
    parts: list[msgspec.Raw] = msgspec.field(default_factory=list)


# --- permissions, questions, todos -------------------------------------------------------------


class ToolRef(Wire, frozen=True, kw_only=True):
    """The tool call a permission or question belongs to."""

    message_id: str = msgspec.field(name="messageID", default="")
    call_id: str = msgspec.field(name="callID", default="")


class PermissionRequest(Wire, frozen=True, kw_only=True):
    """A pending permission (``permission.asked``, ``GET /permission``)."""

    id: str
    session_id: str = msgspec.field(name="sessionID")
    permission: str = ""
    patterns: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, object] = msgspec.field(default_factory=dict)
    always: list[str] = msgspec.field(default_factory=list)
    tool: ToolRef | None = None


class LegacyPermission(Wire, frozen=True, kw_only=True):
    """The pre-1.0.2xx ``Permission`` of ``permission.updated``."""

    id: str
    type: str = ""
    pattern: str | list[str] | None = None
    session_id: str = msgspec.field(name="sessionID")
    message_id: str = msgspec.field(name="messageID", default="")
    call_id: str | None = msgspec.field(name="callID", default=None)
    title: str = ""
    metadata: dict[str, object] = msgspec.field(default_factory=dict)


class QuestionOption(Wire, frozen=True, kw_only=True):
    """One answer a question offers."""

    label: str
    description: str = ""


class QuestionInfo(Wire, frozen=True, kw_only=True):
    """One question."""

    question: str
    header: str = ""
    options: list[QuestionOption] = msgspec.field(default_factory=list)
    multiple: bool = False
    custom: bool | None = None


class QuestionRequest(Wire, frozen=True, kw_only=True):
    """A pending question (``question.asked``, ``GET /question``)."""

    id: str
    session_id: str = msgspec.field(name="sessionID")
    questions: list[QuestionInfo] = msgspec.field(default_factory=list)
    tool: ToolRef | None = None


class Todo(Wire, frozen=True, kw_only=True):
    """One todo entry."""

    content: str = ""
    status: str = ""
    priority: str = ""
