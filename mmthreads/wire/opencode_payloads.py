"""OpenCode event payloads on the wire: the ``properties`` of each event kind the bridge uses.

The second phase of decoding an event (``mmthreads.wire.opencode``): once the envelope names the
kind, its ``properties`` decode into one of these.  Both dialects fit (reference §5): session
and message events without ``sessionID`` (before about 1.4), ``message.part.updated`` with a
``delta`` (before about 1.2), ``permission.replied`` with ``permissionID``/``response``.  The
legacy ``permission.updated`` payload is ``LegacyPermission`` and ``permission.asked`` /
``question.asked`` carry the resources themselves (``mmthreads.wire.opencode_resources``).

These are *their* types: unknown fields are ignored.
"""

from __future__ import annotations

import msgspec

from mmthreads.wire.opencode_resources import (
    Message,
    NamedError,
    Session,
    StatusInfo,
    Todo,
    Wire,
)

__all__ = [
    "DeltaProps",
    "MessageProps",
    "PartProps",
    "PermissionRepliedProps",
    "QuestionRejectedProps",
    "QuestionRepliedProps",
    "SessionErrorProps",
    "SessionIdProps",
    "SessionProps",
    "StatusProps",
    "TodoProps",
]


class SessionProps(Wire, frozen=True, kw_only=True):
    """``session.created|updated|deleted``: ``{sessionID, info}``; before about 1.4 ``{info}``."""

    info: Session
    session_id: str | None = msgspec.field(name="sessionID", default=None)


class StatusProps(Wire, frozen=True, kw_only=True):
    """``session.status``."""

    session_id: str = msgspec.field(name="sessionID")
    status: StatusInfo


class SessionIdProps(Wire, frozen=True, kw_only=True):
    """``session.idle`` (and any ``{sessionID}``-only event)."""

    session_id: str = msgspec.field(name="sessionID")


class SessionErrorProps(Wire, frozen=True, kw_only=True):
    """``session.error``: both fields optional."""

    session_id: str | None = msgspec.field(name="sessionID", default=None)
    error: NamedError | None = None


class MessageProps(Wire, frozen=True, kw_only=True):
    """``message.updated``: ``{sessionID, info}``; older ``{info}``."""

    info: Message
    session_id: str | None = msgspec.field(name="sessionID", default=None)


class PartProps(Wire, frozen=True, kw_only=True):
    """``message.part.updated``: ``{sessionID, part, time}``; older ``{part, delta?}``."""

    part: msgspec.Raw
    session_id: str | None = msgspec.field(name="sessionID", default=None)
    #: Older servers streamed text here; newer ones send ``message.part.delta``.
    delta: str | None = None


class DeltaProps(Wire, frozen=True, kw_only=True):
    """``message.part.delta``."""

    session_id: str = msgspec.field(name="sessionID")
    message_id: str = msgspec.field(name="messageID")
    part_id: str = msgspec.field(name="partID")
    field: str = "text"
    delta: str


class PermissionRepliedProps(Wire, frozen=True, kw_only=True):
    """``permission.replied``: ``{requestID, reply}``; older ``{permissionID, response}``."""

    session_id: str = msgspec.field(name="sessionID")
    request_id: str | None = msgspec.field(name="requestID", default=None)
    permission_id: str | None = msgspec.field(name="permissionID", default=None)
    reply: str | None = None
    response: str | None = None


class QuestionRepliedProps(Wire, frozen=True, kw_only=True):
    """``question.replied``."""

    session_id: str = msgspec.field(name="sessionID")
    request_id: str = msgspec.field(name="requestID")
    answers: list[list[str]] = msgspec.field(default_factory=list)


class QuestionRejectedProps(Wire, frozen=True, kw_only=True):
    """``question.rejected``."""

    session_id: str = msgspec.field(name="sessionID")
    request_id: str = msgspec.field(name="requestID")


class TodoProps(Wire, frozen=True, kw_only=True):
    """``todo.updated``."""

    session_id: str = msgspec.field(name="sessionID")
    todos: list[Todo] = msgspec.field(default_factory=list)
