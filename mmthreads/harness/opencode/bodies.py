"""Request bodies the stand-in accepts, as msgspec Structs (openapi 1.18.33 shapes).

They decode leniently (no ``forbid_unknown_fields``): clients of newer servers send fields this
stand-in does not know.
"""

from __future__ import annotations

from typing import Any

from mmthreads.harness.opencode.wire import PermissionRule, Reply, Wire

__all__ = [
    "AgentPartInput",
    "FilePartInput",
    "LegacyPermissionBody",
    "PartInput",
    "PermissionReplyBody",
    "PromptBody",
    "PromptModel",
    "QuestionReplyBody",
    "SessionCreateBody",
    "SessionPatchBody",
    "SubtaskPartInput",
    "TextPartInput",
]


class TextPartInput(Wire, kw_only=True, tag="text", tag_field="type"):
    """A text part of a prompt."""

    text: str
    id: str | None = None
    synthetic: bool | None = None


class FilePartInput(Wire, kw_only=True, tag="file", tag_field="type"):
    """A file part of a prompt (a ``data:`` URL from a remote client)."""

    mime: str
    url: str
    filename: str | None = None
    source: dict[str, Any] | None = None
    id: str | None = None


class AgentPartInput(Wire, kw_only=True, tag="agent", tag_field="type"):
    """An ``@agent`` mention (accepted, not acted on)."""

    name: str
    source: dict[str, Any] | None = None


class SubtaskPartInput(Wire, kw_only=True, tag="subtask", tag_field="type"):
    """A sub-agent task (accepted, not acted on)."""

    prompt: str
    description: str
    agent: str


PartInput = TextPartInput | FilePartInput | AgentPartInput | SubtaskPartInput


class PromptModel(Wire, kw_only=True):
    """``{providerID, modelID}`` in a prompt body."""

    provider_id: str
    model_id: str


class PromptBody(Wire, kw_only=True):
    """The body of ``POST /session/{id}/message`` and ``/prompt_async``."""

    parts: list[PartInput]
    model: PromptModel | None = None
    agent: str | None = None
    variant: str | None = None
    system: str | None = None
    tools: dict[str, bool] | None = None
    no_reply: bool | None = None
    message_id: str | None = None


class SessionCreateBody(Wire, kw_only=True):
    """The body of ``POST /session`` (all optional)."""

    parent_id: str | None = None
    title: str | None = None
    metadata: dict[str, Any] | None = None
    permission: list[PermissionRule] | None = None


class _ArchiveTime(Wire, kw_only=True):
    archived: float | None = None


class SessionPatchBody(Wire, kw_only=True):
    """The body of ``PATCH /session/{id}``."""

    title: str | None = None
    metadata: dict[str, Any] | None = None
    permission: list[PermissionRule] | None = None
    time: _ArchiveTime | None = None


class PermissionReplyBody(Wire, kw_only=True):
    """The body of ``POST /permission/{id}/reply``."""

    reply: Reply
    message: str | None = None


class LegacyPermissionBody(Wire, kw_only=True):
    """The body of the legacy ``POST /session/{id}/permissions/{pid}``."""

    response: Reply


class QuestionReplyBody(Wire, kw_only=True):
    """The body of ``POST /question/{id}/reply``: one list of labels per question."""

    answers: list[list[str]]
