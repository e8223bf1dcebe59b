"""OpenCode's event streams on the wire, and ``decode_event``: one frame in, normalised events out.

Events decode in two phases (``reference/opencode-server-api.md`` §3): first
the envelope, ``{id?, type, properties: Raw}`` on ``/event`` or ``{directory?, project?,
workspace?, payload: Raw}`` on ``/global/event``; then ``properties`` with the decoder of that
kind.  Both dialects decode to the same ``mmthreads.core.agent_events`` (§5): the current one
(1.18.33) and the older one with ``permission.updated`` ``{id, type, pattern, …}``,
``permission.replied {permissionID, response}``, text deltas inside ``message.part.updated``
and session and message events as ``{info}`` without ``sessionID``.

Kinds the bridge does not use (``plugin.added``, ``session.diff``, the ``sync`` envelopes of
``/global/event`` …) decode to no events; the stream grows between releases, so unknown kinds
are expected and only logged at debug level.  A frame that is not JSON, or a known kind with the
wrong shape, raises ``AgentWireError``: the consumer logs it and reads on.

These are *their* types: unknown fields are ignored.  The per-kind payloads are
``mmthreads.wire.opencode_payloads``, the resources they carry (sessions, messages, parts …)
``mmthreads.wire.opencode_resources``, and the mapping onto the bridge's events
``mmthreads.wire.opencode_normalise``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, TypeAlias

import msgspec

from mmthreads.core import agent_events as ae
from mmthreads.errors import AgentWireError
from mmthreads.wire.opencode_normalise import (
    decode_part,
    to_message_updated,
    to_permission_asked,
    to_question_asked,
    to_session_info,
    to_session_status,
    to_todos,
)
from mmthreads.wire.opencode_payloads import (
    DeltaProps,
    MessageProps,
    PartProps,
    PermissionRepliedProps,
    QuestionRejectedProps,
    QuestionRepliedProps,
    SessionErrorProps,
    SessionIdProps,
    SessionProps,
    StatusProps,
    TodoProps,
)
from mmthreads.wire.opencode_resources import (
    LegacyPermission,
    NamedError,
    PermissionRequest,
    QuestionRequest,
    Wire,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Envelope",
    "Frame",
    "GlobalEnvelope",
    "decode_event",
    "decode_frame",
    "decode_global_event",
]

logger = logging.getLogger(__name__)

_EMPTY: Final = msgspec.Raw(b"{}")


# --- envelopes ---------------------------------------------------------------------------------


class Envelope(Wire, frozen=True, kw_only=True):
    """One ``/event`` frame: ``{id?, type, properties}`` (``sync`` payloads carry no properties)."""

    type: str
    properties: msgspec.Raw = _EMPTY
    #: ``evt_…`` since about 1.14; never used for resuming.
    id: str | None = None


class GlobalEnvelope(Wire, frozen=True, kw_only=True):
    """One ``/global/event`` frame; ``server.*`` frames carry only ``payload``."""

    payload: msgspec.Raw
    #: The instance's directory; ``"global"`` for ``project.updated`` and ``global.disposed``.
    directory: str | None = None
    project: str | None = None
    workspace: str | None = None


# --- decoding ----------------------------------------------------------------------------------


class Frame(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded SSE frame.

    Attributes:
        type: The event kind (``server.heartbeat``, ``session.status``, ``sync`` …), so a
            consumer can react to frames that carry no bridge event.
        directory: The instance the frame came from (``/global/event``), else as given.
        events: What the frame means for the bridge; empty for kinds it does not use.
    """

    type: str
    directory: str = ""
    events: list[ae.AgentEvent] = msgspec.field(default_factory=list)


_Handler: TypeAlias = "Callable[[msgspec.Raw, str, str], list[ae.AgentEvent]]"

_envelope: Final = msgspec.json.Decoder(Envelope)
_global_envelope: Final = msgspec.json.Decoder(GlobalEnvelope)
_session_props: Final = msgspec.json.Decoder(SessionProps)
_status_props: Final = msgspec.json.Decoder(StatusProps)
_session_id_props: Final = msgspec.json.Decoder(SessionIdProps)
_session_error_props: Final = msgspec.json.Decoder(SessionErrorProps)
_message_props: Final = msgspec.json.Decoder(MessageProps)
_part_props: Final = msgspec.json.Decoder(PartProps)
_delta_props: Final = msgspec.json.Decoder(DeltaProps)
_permission_request: Final = msgspec.json.Decoder(PermissionRequest)
_legacy_permission: Final = msgspec.json.Decoder(LegacyPermission)
_permission_replied_props: Final = msgspec.json.Decoder(PermissionRepliedProps)
_question_request: Final = msgspec.json.Decoder(QuestionRequest)
_question_replied_props: Final = msgspec.json.Decoder(QuestionRepliedProps)
_question_rejected_props: Final = msgspec.json.Decoder(QuestionRejectedProps)
_todo_props: Final = msgspec.json.Decoder(TodoProps)


def _session_upserted(created: bool) -> _Handler:
    def handle(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
        info = to_session_info(_session_props.decode(raw).info)
        where = directory or info.directory
        return [ae.SessionUpserted(server=server, directory=where, info=info, created=created)]

    return handle


def _session_deleted(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _session_props.decode(raw)
    session_id = props.session_id or props.info.id
    where = directory or props.info.directory
    return [ae.SessionDeleted(server=server, directory=where, session_id=session_id)]


def _session_status(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _status_props.decode(raw)
    event = to_session_status(props.session_id, props.status, server=server, directory=directory)
    return [] if event is None else [event]


def _session_idle(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    session_id = _session_id_props.decode(raw).session_id
    return [ae.SessionIdle(server=server, directory=directory, session_id=session_id)]


def _session_error(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _session_error_props.decode(raw)
    error = props.error or NamedError()
    # The server sends some errors without a session (e.g. a failed title generation).
    return [
        ae.SessionError(
            server=server,
            directory=directory,
            session_id=props.session_id or "",
            name=error.name,
            message=error.data.message,
        )
    ]


def _message_updated(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    event = to_message_updated(_message_props.decode(raw).info, server=server, directory=directory)
    return [] if event is None else [event]


def _part_updated(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _part_props.decode(raw)
    part_session, part = decode_part(props.part)
    session_id = props.session_id or part_session
    events: list[ae.AgentEvent] = []
    if props.delta is not None:
        # Older servers: the delta rides on the snapshot.  The delta goes first, so a consumer
        # that appends deltas and then replaces with the snapshot ends with the snapshot.
        events.append(
            ae.PartDelta(
                server=server,
                directory=directory,
                session_id=session_id,
                message_id=part.message_id,
                part_id=part.part_id,
                field="text",
                delta=props.delta,
            )
        )
    events.append(
        ae.PartUpdated(server=server, directory=directory, session_id=session_id, part=part)
    )
    return events


def _part_delta(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _delta_props.decode(raw)
    return [
        ae.PartDelta(
            server=server,
            directory=directory,
            session_id=props.session_id,
            message_id=props.message_id,
            part_id=props.part_id,
            field=props.field,
            delta=props.delta,
        )
    ]


def _permission_asked(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    request = _permission_request.decode(raw)
    return [to_permission_asked(request, server=server, directory=directory)]


def _permission_updated(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    request = _legacy_permission.decode(raw)
    return [to_permission_asked(request, server=server, directory=directory)]


def _permission_replied(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _permission_replied_props.decode(raw)
    request_id = props.request_id or props.permission_id
    if not request_id:
        raise AgentWireError("permission.replied names no requestID or permissionID")
    return [
        ae.PermissionReplied(
            server=server,
            directory=directory,
            request_id=request_id,
            session_id=props.session_id,
            reply=props.reply or props.response or "",
        )
    ]


def _question_asked(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    request = _question_request.decode(raw)
    return [to_question_asked(request, server=server, directory=directory)]


def _question_replied(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _question_replied_props.decode(raw)
    return [
        ae.QuestionResolved(
            server=server,
            directory=directory,
            request_id=props.request_id,
            session_id=props.session_id,
            answers=tuple(tuple(answer) for answer in props.answers),
        )
    ]


def _question_rejected(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _question_rejected_props.decode(raw)
    return [
        ae.QuestionResolved(
            server=server,
            directory=directory,
            request_id=props.request_id,
            session_id=props.session_id,
            rejected=True,
        )
    ]


def _todo_updated(raw: msgspec.Raw, server: str, directory: str) -> list[ae.AgentEvent]:
    props = _todo_props.decode(raw)
    todos = to_todos(props.todos)
    return [
        ae.TodoUpdated(server=server, directory=directory, session_id=props.session_id, todos=todos)
    ]


_HANDLERS: Final[dict[str, _Handler]] = {
    "session.created": _session_upserted(created=True),
    "session.updated": _session_upserted(created=False),
    "session.deleted": _session_deleted,
    "session.status": _session_status,
    "session.idle": _session_idle,
    "session.error": _session_error,
    "message.updated": _message_updated,
    "message.part.updated": _part_updated,
    "message.part.delta": _part_delta,
    "permission.asked": _permission_asked,
    "permission.updated": _permission_updated,
    "permission.replied": _permission_replied,
    "question.asked": _question_asked,
    "question.replied": _question_replied,
    "question.rejected": _question_rejected,
    "todo.updated": _todo_updated,
}

#: Kinds the bridge knows and does not need; others are logged at debug level.
_UNUSED: Final = frozenset(
    {
        "server.connected",
        "server.heartbeat",
        "server.instance.disposed",
        "global.disposed",
        "sync",
        "session.diff",
        "session.compacted",
        "message.removed",
        "message.part.removed",
        "plugin.added",
        "catalog.updated",
        "reference.updated",
        "integration.updated",
        "project.updated",
        "file.edited",
        "file.watcher.updated",
        "lsp.updated",
        "vcs.branch.updated",
    }
)


def decode_frame(data: bytes, *, server: str, directory: str = "", wrapped: bool = False) -> Frame:
    """Decode one SSE ``data`` payload.

    Args:
        data: The JSON after ``data: ``.
        server: The server's name (its base URL), copied into every event.
        directory: The instance the stream follows (``/event?directory=…``); ignored when
            ``wrapped``, where each frame names its own.
        wrapped: ``True`` for ``/global/event`` frames (``{directory?, …, payload}``).

    Returns:
        The frame's kind, directory and normalised events.

    Raises:
        AgentWireError: Not JSON, no envelope, or a known kind with the wrong shape.
    """
    try:
        if wrapped:
            outer = _global_envelope.decode(data)
            directory = outer.directory or ""
            envelope = _envelope.decode(outer.payload)
        else:
            envelope = _envelope.decode(data)
    except msgspec.DecodeError as exc:
        raise AgentWireError(str(exc)) from None
    kind = envelope.type
    handler = _HANDLERS.get(kind)
    if handler is None:
        if kind not in _UNUSED:
            logger.debug("ignoring OpenCode event kind %r", kind)
        return Frame(type=kind, directory=directory)
    try:
        events = handler(envelope.properties, server, directory)
    except msgspec.DecodeError as exc:
        raise AgentWireError(f"{kind}: {exc}") from None
    return Frame(type=kind, directory=directory, events=events)


def decode_event(data: bytes, *, server: str, directory: str = "") -> list[ae.AgentEvent]:
    """Decode one ``/event`` frame into the bridge's events.

    A frame may mean several events: an older server's ``message.part.updated`` with a
    ``delta`` gives a ``PartDelta`` then a ``PartUpdated``.  Kinds the bridge does not use
    give ``[]``.

    Args:
        data: The JSON after ``data: ``.
        server: The server's name (its base URL).
        directory: The instance the stream follows.

    Raises:
        AgentWireError: The frame cannot be decoded; log it and read on.
    """
    return decode_frame(data, server=server, directory=directory).events


def decode_global_event(data: bytes, *, server: str) -> list[ae.AgentEvent]:
    """Decode one ``/global/event`` frame (``sync`` envelopes give ``[]``).

    Raises:
        AgentWireError: The frame cannot be decoded; log it and read on.
    """
    return decode_frame(data, server=server, wrapped=True).events
