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

Modules: ``base`` (the ``Wire`` policy and small shared pieces), ``sessions``, ``messages``
(messages and their parts) and ``requests`` (permissions and questions); every name is
importable from this package.
"""

from __future__ import annotations

from mmthreads.harness.opencode.wire.base import (
    Cache,
    FileDiff,
    NamedError,
    PermissionRule,
    Reply,
    Todo,
    Tokens,
    Wire,
)
from mmthreads.harness.opencode.wire.messages import (
    AssistantMessage,
    FilePart,
    MessagePath,
    MessageTime,
    Part,
    PartTime,
    PatchPart,
    ReasoningPart,
    StepFinishPart,
    StepStartPart,
    TextPart,
    ToolPart,
    ToolState,
    ToolStateCompleted,
    ToolStateError,
    ToolStatePending,
    ToolStateRunning,
    ToolTime,
    UserMessage,
    UserModel,
    UserSummary,
)
from mmthreads.harness.opencode.wire.requests import (
    CreatedTime,
    LegacyPermission,
    PermissionRequest,
    QuestionInfo,
    QuestionOption,
    QuestionRequest,
    ToolRef,
)
from mmthreads.harness.opencode.wire.sessions import (
    ModelRef,
    Project,
    ProjectTime,
    Session,
    SessionSummary,
    SessionTime,
)

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
    "Wire",
]
