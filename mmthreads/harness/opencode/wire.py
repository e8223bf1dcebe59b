"""The stand-in's wire shapes: OpenCode 1.18.33 objects as msgspec Structs.

Each Struct mirrors a schema of ``reference/opencode-openapi-1.18.33.json`` (``Session``,
``UserMessage``, ``AssistantMessage``, the ``Part`` union, ``ToolState``, ``PermissionRequest``,
``QuestionRequest``, ``Todo``, ``Project`` …).  Python names are snake_case; ``_wire_name`` turns
them into the wire's camelCase with OpenCode's ``ID`` suffix (``session_id`` -> ``sessionID``).

Optional fields default to ``None`` and are left out of the JSON (``omit_defaults``), so an object
carries exactly the keys the real server sends.  Fields the real server always sends, even when
zero or empty (``cost``, ``path: ""``, ``input: {}``), have no default and are always written.

State objects (sessions, messages, parts) are mutable on purpose: the stand-in's state owns them
and changes them as a turn progresses; every event encodes a snapshot at the moment it is
published, so later changes never leak into an event already sent.



"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AssistantMessage",
    "Cache",
    "CreatedTime",
    "FileDiff",
    "FilePart",
    "LegacyPermission",
    "MessagePath",
    "MessageTime",
    "ModelRef",
    "NamedError",
    "Part",
    "PartTime",
    "PatchPart",
    "PermissionRequest",
    "PermissionRule",
    "Project",
    "ProjectTime",
    "QuestionInfo",
    "QuestionOption",
    "QuestionRequest",
    "ReasoningPart",
    "Reply",
    "Session",
    "SessionSummary",
    "SessionTime",
    "StepFinishPart",
    "StepStartPart",
    "TextPart",
    "Todo",
    "Tokens",
    "ToolPart",
    "ToolRef",
    "ToolState",
    "ToolStateCompleted",
    "ToolStateError",
    "ToolStatePending",
    "ToolStateRunning",
    "ToolTime",
    "UserMessage",
    "UserModel",
    "UserSummary",
]

Reply = Literal["once", "always", "reject"]


def _wire_name(name: str) -> str:
    """``session_id`` -> ``sessionID``, ``status_code`` -> ``statusCode``."""
    head, *rest = name.split("_")
    out = head + "".join(word[:1].upper() + word[1:] for word in rest)
    return out[:-2] + "ID" if out.endswith("Id") else out


class Wire(msgspec.Struct, kw_only=True, omit_defaults=True, rename=_wire_name):
    """Policy for OpenCode wire objects: keyword-only, camelCase, optional keys left out."""


# -- small pieces ------------------------------------------------------------------------------


class Cache(Wire, kw_only=True):
    """Token cache counters."""

    read: int
    write: int


class Tokens(Wire, kw_only=True):
    """Token counts of a step, a message or a session (``total`` only on steps and messages)."""

    total: int | None = None
    input: int
    output: int
    reasoning: int
    cache: Cache


class NamedError(Wire, kw_only=True):
    """An OpenCode ``NamedError``: ``{name, data: {message, …}}`` (``APIError``, …)."""

    name: str
    data: dict[str, Any]


class FileDiff(Wire, kw_only=True):
    """A ``SnapshotFileDiff``: one changed file of a turn."""

    file: str | None = None
    patch: str | None = None
    additions: int
    deletions: int
    status: str | None = None


class PermissionRule(Wire, kw_only=True):
    """One permission rule: ``{permission, pattern, action}``."""

    permission: str
    pattern: str
    action: Literal["allow", "deny", "ask"]


class Todo(Wire, kw_only=True):
    """One entry of a session's todo list."""

    content: str
    status: str
    priority: str


# -- projects and sessions ---------------------------------------------------------------------


class ProjectTime(Wire, kw_only=True):
    """A project's timestamps (epoch ms)."""

    created: int
    updated: int


class Project(Wire, kw_only=True):
    """A ``Project``: one worktree the server knows."""

    id: str
    worktree: str
    vcs: str | None = None
    name: str | None = None
    time: ProjectTime
    sandboxes: list[str]


class SessionTime(Wire, kw_only=True):
    """A session's timestamps; ``archived`` is set by ``PATCH /session/{id}``."""

    created: int
    updated: int
    compacting: int | None = None
    archived: float | None = None


class ModelRef(Wire, kw_only=True):
    """The model a session uses: ``{id, providerID, variant?}`` (``id``, not ``modelID``)."""

    id: str
    provider_id: str
    variant: str | None = None


class SessionSummary(Wire, kw_only=True):
    """Change counters of a session."""

    additions: int
    deletions: int
    files: int
    diffs: list[FileDiff] | None = None


class Session(Wire, kw_only=True):
    """The ``Session`` object (reference §2.13)."""

    id: str
    slug: str
    version: str
    project_id: str
    directory: str
    path: str
    parent_id: str | None = None
    title: str
    agent: str | None = None
    model: ModelRef | None = None
    summary: SessionSummary | None = None
    cost: float
    tokens: Tokens
    time: SessionTime
    metadata: dict[str, Any] | None = None
    permission: list[PermissionRule] | None = None


# -- messages ----------------------------------------------------------------------------------


class MessageTime(Wire, kw_only=True):
    """A message's timestamps; an assistant message gets ``completed`` when its step ends."""

    created: int
    completed: int | None = None


class UserModel(Wire, kw_only=True):
    """The model of a prompt: ``{providerID, modelID}``."""

    provider_id: str
    model_id: str
    variant: str | None = None


class UserSummary(Wire, kw_only=True):
    """The summary the server attaches to a user message once its turn ran."""

    diffs: list[FileDiff]


class MessagePath(Wire, kw_only=True):
    """Where an assistant message ran."""

    cwd: str
    root: str


class UserMessage(Wire, kw_only=True, tag="user", tag_field="role"):
    """A user message (one prompt)."""

    id: str
    session_id: str
    time: MessageTime
    agent: str
    model: UserModel
    summary: UserSummary | None = None
    system: str | None = None
    tools: dict[str, bool] | None = None


class AssistantMessage(Wire, kw_only=True, tag="assistant", tag_field="role"):
    """An assistant message: one step of the agent loop."""

    id: str
    session_id: str
    parent_id: str
    mode: str
    agent: str
    path: MessagePath
    cost: float
    tokens: Tokens
    model_id: str
    provider_id: str
    time: MessageTime
    finish: str | None = None
    error: NamedError | None = None


# -- parts -------------------------------------------------------------------------------------


class PartTime(Wire, kw_only=True):
    """When a text or reasoning part started and ended (epoch ms)."""

    start: int
    end: int | None = None


class TextPart(Wire, kw_only=True, tag="text", tag_field="type"):
    """Text of a message; streamed by deltas, then snapshotted."""

    id: str
    session_id: str
    message_id: str
    text: str
    synthetic: bool | None = None
    time: PartTime | None = None


class ReasoningPart(Wire, kw_only=True, tag="reasoning", tag_field="type"):
    """The model's reasoning."""

    id: str
    session_id: str
    message_id: str
    text: str
    time: PartTime


class FilePart(Wire, kw_only=True, tag="file", tag_field="type"):
    """A file attached to a prompt."""

    id: str
    session_id: str
    message_id: str
    mime: str
    url: str
    filename: str | None = None
    source: dict[str, Any] | None = None


class ToolTime(Wire, kw_only=True):
    """When a tool call started and ended."""

    start: int
    end: int | None = None


class ToolStatePending(Wire, kw_only=True, tag="pending", tag_field="status"):
    """The model is still writing the call's arguments."""

    input: dict[str, Any]
    raw: str


class ToolStateRunning(Wire, kw_only=True, tag="running", tag_field="status"):
    """The tool runs (or waits for a permission)."""

    input: dict[str, Any]
    title: str | None = None
    metadata: dict[str, Any] | None = None
    time: ToolTime


class ToolStateCompleted(Wire, kw_only=True, tag="completed", tag_field="status"):
    """The tool finished."""

    input: dict[str, Any]
    output: str
    title: str
    metadata: dict[str, Any]
    time: ToolTime


class ToolStateError(Wire, kw_only=True, tag="error", tag_field="status"):
    """The tool failed, was rejected or was aborted."""

    input: dict[str, Any]
    error: str
    metadata: dict[str, Any] | None = None
    time: ToolTime


ToolState = ToolStatePending | ToolStateRunning | ToolStateCompleted | ToolStateError


class ToolPart(Wire, kw_only=True, tag="tool", tag_field="type"):
    """One tool call and its state."""

    id: str
    session_id: str
    message_id: str
    call_id: str
    tool: str
    state: ToolState


class StepStartPart(Wire, kw_only=True, tag="step-start", tag_field="type"):
    """A step (one model call) started."""

    id: str
    session_id: str
    message_id: str
    snapshot: str | None = None


class StepFinishPart(Wire, kw_only=True, tag="step-finish", tag_field="type"):
    """A step finished: why, what it cost."""

    id: str
    session_id: str
    message_id: str
    reason: str
    snapshot: str | None = None
    cost: float
    tokens: Tokens


class PatchPart(Wire, kw_only=True, tag="patch", tag_field="type"):
    """The files a step changed."""

    id: str
    session_id: str
    message_id: str
    hash: str
    files: list[str]


Part = TextPart | ReasoningPart | FilePart | ToolPart | StepStartPart | StepFinishPart | PatchPart


# -- permissions and questions -----------------------------------------------------------------


class ToolRef(Wire, kw_only=True):
    """The tool call a permission or question belongs to."""

    message_id: str
    call_id: str


class PermissionRequest(Wire, kw_only=True):
    """A pending permission (1.18.33's ``PermissionRequest``)."""

    id: str
    session_id: str
    permission: str
    patterns: list[str]
    metadata: dict[str, Any]
    always: list[str]
    tool: ToolRef | None = None


class CreatedTime(Wire, kw_only=True):
    """A creation time (epoch ms)."""

    created: int


class LegacyPermission(Wire, kw_only=True):
    """The pre-1.0.2xx ``Permission`` sent with ``permission.updated``."""

    id: str
    type: str
    pattern: str | list[str] | None = None
    session_id: str
    message_id: str
    call_id: str | None = None
    title: str
    metadata: dict[str, Any]
    time: CreatedTime


class QuestionOption(Wire, kw_only=True):
    """One choice of a question."""

    label: str
    description: str


class QuestionInfo(Wire, kw_only=True):
    """One question of a ``question`` tool call."""

    question: str
    header: str
    options: list[QuestionOption]
    multiple: bool | None = None
    custom: bool | None = None


class QuestionRequest(Wire, kw_only=True):
    """A pending question (1.18.33's ``QuestionRequest``)."""

    id: str
    session_id: str
    questions: list[QuestionInfo]
    tool: ToolRef | None = None
