"""Permission and question requests: what a turn asks the human, in both dialects."""

from __future__ import annotations

from typing import Any

from mmthreads.harness.opencode.wire.base import Wire

__all__ = [
    "CreatedTime",
    "LegacyPermission",
    "PermissionRequest",
    "QuestionInfo",
    "QuestionOption",
    "QuestionRequest",
    "ToolRef",
]


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
