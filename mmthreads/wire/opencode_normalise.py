"""Turning OpenCode's resources into the bridge's normalised types, whatever the dialect.

Pure functions from ``mmthreads.wire.opencode_resources`` to ``mmthreads.core.agent_events``:
both the event decoder (``mmthreads.wire.opencode``) and the REST client use them, so a session,
a part or a pending permission looks the same whether it came on the stream or from a reconcile.
Times become whole epoch milliseconds; legacy shapes (reference §5) map onto current ones.
``HistoryMessage`` and ``ProviderCatalog`` are the normalised answers of two REST calls that no
event carries.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from mmthreads.core import agent_events as ae
from mmthreads.wire.opencode_resources import (
    FilePart,
    LegacyPermission,
    Message,
    PartHead,
    PatchPart,
    PermissionRequest,
    QuestionRequest,
    ReasoningPart,
    Session,
    StatusInfo,
    StepFinishPart,
    TextPart,
    Todo,
    Tokens,
    ToolPart,
)

if TYPE_CHECKING:
    from mmthreads.wire.opencode_rest import ProviderList

__all__ = [
    "HistoryMessage",
    "ModelInfo",
    "ProviderCatalog",
    "decode_part",
    "to_message_updated",
    "to_permission_asked",
    "to_provider_catalog",
    "to_question_asked",
    "to_session_info",
    "to_session_status",
    "to_todos",
    "to_tokens",
]

logger = logging.getLogger(__name__)


class HistoryMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a session's history with its parts, normalised.

    Attributes:
        info: The message's metadata, as a ``message.updated`` event would carry it.
        parts: Its parts in order, as ``message.part.updated`` snapshots would carry them.
    """

    info: ae.MessageUpdated
    parts: tuple[ae.Part, ...] = ()


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A model a connected provider offers, with what it can take as input."""

    provider_id: str
    model_id: str
    name: str = ""
    image_input: bool = False
    pdf_input: bool = False
    attachment: bool = False
    toolcall: bool = False
    reasoning: bool = False


class ProviderCatalog(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /provider``, reduced to what a bridge chooses from.

    Attributes:
        connected: Providers with credentials, in the server's order.
        models: Every model of a connected provider.
        defaults: The default model per provider (``providerID -> modelID``).
    """

    connected: tuple[str, ...] = ()
    models: tuple[ModelInfo, ...] = ()
    defaults: dict[str, str] = msgspec.field(default_factory=dict)

    def find(self, provider_id: str, model_id: str) -> ModelInfo | None:
        """The model, if a connected provider offers it."""
        for model in self.models:
            if model.provider_id == provider_id and model.model_id == model_id:
                return model
        return None

    def default_model(self) -> tuple[str, str] | None:
        """``(provider, model)`` of the first connected provider's default, if any."""
        for provider_id in self.connected:
            model_id = self.defaults.get(provider_id)
            if model_id is not None and self.find(provider_id, model_id) is not None:
                return provider_id, model_id
        return None


# Literal-typed lookups: the wire says ``str``, the bridge's events name the values they know.
_STATUS_KINDS: Final[dict[str, Literal["busy", "idle", "retry"]]] = {
    "busy": "busy",
    "idle": "idle",
    "retry": "retry",
}
_ROLES: Final[dict[str, Literal["user", "assistant"]]] = {"user": "user", "assistant": "assistant"}
_TOOL_STATUSES: Final[dict[str, ae.ToolStatus]] = {
    "pending": "pending",
    "running": "running",
    "completed": "completed",
    "error": "error",
}


def _ms(value: float | None) -> int | None:
    return None if value is None else int(value)


def to_tokens(tokens: Tokens | None) -> ae.Tokens:
    """Token counts, as whole numbers."""
    if tokens is None:
        return ae.Tokens()
    return ae.Tokens(
        input=int(tokens.input),
        output=int(tokens.output),
        reasoning=int(tokens.reasoning),
        cache_read=int(tokens.cache.read),
        cache_write=int(tokens.cache.write),
    )


def to_session_info(session: Session) -> ae.SessionInfo:
    """The bridge's view of a session."""
    return ae.SessionInfo(
        session_id=session.id,
        directory=session.directory,
        title=session.title,
        parent_id=session.parent_id,
        created_ms=int(session.time.created),
        updated_ms=int(session.time.updated),
        archived_ms=_ms(session.time.archived),
    )


def to_session_status(
    session_id: str, status: StatusInfo, *, server: str, directory: str
) -> ae.SessionStatus | None:
    """A session's status, or ``None`` for a status kind this bridge does not know."""
    kind = _STATUS_KINDS.get(status.type)
    if kind is None:
        logger.debug("unknown session status %r of %s", status.type, session_id)
        return None
    return ae.SessionStatus(
        server=server,
        directory=directory,
        session_id=session_id,
        status=kind,
        attempt=status.attempt,
        message=status.message,
        next_ms=_ms(status.next),
    )


def to_message_updated(
    message: Message, *, server: str, directory: str
) -> ae.MessageUpdated | None:
    """A message's metadata, or ``None`` for a role other than user and assistant."""
    role = _ROLES.get(message.role)
    if role is None:
        logger.debug("message %s has unknown role %r", message.id, message.role)
        return None
    model = message.model
    error = message.error
    return ae.MessageUpdated(
        server=server,
        directory=directory,
        session_id=message.session_id,
        message_id=message.id,
        role=role,
        created_ms=int(message.time.created),
        completed_ms=_ms(message.time.completed),
        finish=message.finish or "",
        cost=message.cost,
        tokens=to_tokens(message.tokens),
        model_id=message.model_id or (model.model_id if model else ""),
        provider_id=message.provider_id or (model.provider_id if model else ""),
        error_name=error.name if error else "",
        error_message=error.data.message if error else "",
    )


_part_head = msgspec.json.Decoder(PartHead)
_text_part = msgspec.json.Decoder(TextPart)
_reasoning_part = msgspec.json.Decoder(ReasoningPart)
_tool_part = msgspec.json.Decoder(ToolPart)
_step_finish_part = msgspec.json.Decoder(StepFinishPart)
_file_part = msgspec.json.Decoder(FilePart)
_patch_part = msgspec.json.Decoder(PatchPart)


def decode_part(raw: msgspec.Raw | bytes) -> tuple[str, ae.Part]:
    """Decode one part, whatever its kind.

    Two phases: the common head says the kind, then the kind's own decoder reads the rest.
    A kind the bridge does not render becomes ``OtherPart``, so snapshots stay complete.

    Args:
        raw: The part's JSON.

    Returns:
        The part's session id (``""`` if absent) and the normalised part.

    Raises:
        msgspec.DecodeError: The JSON is malformed or a known kind has the wrong shape.
    """
    head = _part_head.decode(raw)
    ids = {"part_id": head.id, "message_id": head.message_id}
    part: ae.Part
    match head.type:
        case "text":
            text = _text_part.decode(raw)
            part = ae.TextPart(**ids, text=text.text, synthetic=text.synthetic)
        case "reasoning":
            part = ae.ReasoningPart(**ids, text=_reasoning_part.decode(raw).text)
        case "tool":
            tool = _tool_part.decode(raw)
            state = tool.state
            # A status from a newer server: the call is neither done nor failed yet.
            status = _TOOL_STATUSES.get(state.status, "running")
            part = ae.ToolPart(
                **ids,
                tool=tool.tool,
                call_id=tool.call_id,
                status=status,
                title=state.title,
                input=state.input,
                output=state.output,
                error=state.error,
                start_ms=_ms(state.time.start) if state.time else None,
                end_ms=_ms(state.time.end) if state.time else None,
                attachments=tuple(
                    ae.FilePart(
                        part_id=file.id or f"{ids['part_id']}/{n}",
                        message_id=ids["message_id"],
                        mime=file.mime,
                        url=file.url,
                        filename=file.filename or "",
                    )
                    for n, file in enumerate(state.attachments)
                ),
            )
        case "step-start":
            part = ae.StepStartPart(**ids)
        case "step-finish":
            step = _step_finish_part.decode(raw)
            tokens = to_tokens(step.tokens)
            part = ae.StepFinishPart(**ids, reason=step.reason, cost=step.cost, tokens=tokens)
        case "file":
            file = _file_part.decode(raw)
            part = ae.FilePart(**ids, mime=file.mime, url=file.url, filename=file.filename or "")
        case "patch":
            part = ae.PatchPart(**ids, files=tuple(_patch_part.decode(raw).files))
        case other:
            part = ae.OtherPart(**ids, type=other)
    return head.session_id, part


def to_permission_asked(
    request: PermissionRequest | LegacyPermission, *, server: str, directory: str
) -> ae.PermissionAsked:
    """A pending permission, from the current ``PermissionRequest`` or the legacy shape.

    The legacy ``type`` is the permission, its ``pattern`` (one string or a list) the patterns;
    it names no "always" patterns.
    """
    if isinstance(request, LegacyPermission):
        pattern = request.pattern
        patterns = (pattern,) if isinstance(pattern, str) else tuple(pattern or ())
        return ae.PermissionAsked(
            server=server,
            directory=directory,
            request_id=request.id,
            session_id=request.session_id,
            permission=request.type,
            patterns=patterns,
            title=request.title,
            metadata=request.metadata,
            message_id=request.message_id,
            call_id=request.call_id or "",
        )
    tool = request.tool
    return ae.PermissionAsked(
        server=server,
        directory=directory,
        request_id=request.id,
        session_id=request.session_id,
        permission=request.permission,
        patterns=tuple(request.patterns),
        always=tuple(request.always),
        metadata=request.metadata,
        message_id=tool.message_id if tool else "",
        call_id=tool.call_id if tool else "",
    )


def to_question_asked(request: QuestionRequest, *, server: str, directory: str) -> ae.QuestionAsked:
    """A pending question."""
    questions = tuple(
        ae.Question(
            question=q.question,
            header=q.header,
            options=tuple(
                ae.QuestionOption(label=o.label, description=o.description) for o in q.options
            ),
            multiple=q.multiple,
            # OpenCode accepts a typed answer unless the question says otherwise.
            custom=True if q.custom is None else q.custom,
        )
        for q in request.questions
    )
    tool = request.tool
    return ae.QuestionAsked(
        server=server,
        directory=directory,
        request_id=request.id,
        session_id=request.session_id,
        questions=questions,
        message_id=tool.message_id if tool else "",
        call_id=tool.call_id if tool else "",
    )


def to_todos(todos: list[Todo]) -> tuple[ae.Todo, ...]:
    """A todo list."""
    return tuple(ae.Todo(content=t.content, status=t.status, priority=t.priority) for t in todos)


def to_provider_catalog(listing: ProviderList) -> ProviderCatalog:
    """The connected providers' models with their capabilities, and the defaults."""
    connected = tuple(listing.connected)
    models: list[ModelInfo] = []
    for provider in listing.all:
        if provider.id not in connected:
            continue
        for key, model in provider.models.items():
            caps = model.capabilities
            models.append(
                ModelInfo(
                    provider_id=provider.id,
                    model_id=model.id or key,
                    name=model.name,
                    image_input=caps.input.image if caps else False,
                    pdf_input=caps.input.pdf if caps else False,
                    attachment=caps.attachment if caps else False,
                    toolcall=caps.toolcall if caps else False,
                    reasoning=caps.reasoning if caps else False,
                )
            )
    return ProviderCatalog(connected=connected, models=tuple(models), defaults=listing.default)
