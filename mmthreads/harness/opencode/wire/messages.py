"""Messages and their parts: the text, reasoning, files, tool calls and steps of a turn."""

from __future__ import annotations

from typing import Any

from mmthreads.harness.opencode.wire.base import FileDiff, NamedError, Tokens, Wire

__all__ = [
    "AssistantMessage",
    "FilePart",
    "MessagePath",
    "MessageTime",
    "Part",
    "PartTime",
    "PatchPart",
    "ReasoningPart",
    "StepFinishPart",
    "StepStartPart",
    "TextPart",
    "ToolPart",
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
