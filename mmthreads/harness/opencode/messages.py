"""Messages and parts of the stand-in's sessions: the part of ``OpenCodeState`` that stores
prompts, starts assistant messages, streams parts and pages through history.

A mixin, so the agent keeps calling ``state.put_part(...)``; it relies on the attributes and
methods ``OpenCodeState`` defines (declared below for the type checker).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from mmthreads.harness.opencode.bodies import FilePartInput, TextPartInput
from mmthreads.harness.opencode.records import (
    MessageRecord,
    data_url_text,
    decode_cursor,
    encode_cursor,
    zero_tokens,
)
from mmthreads.harness.opencode.wire import (
    AssistantMessage,
    FilePart,
    MessagePath,
    MessageTime,
    ModelRef,
    Part,
    ReasoningPart,
    SessionSummary,
    TextPart,
    Tokens,
    UserMessage,
    UserModel,
    UserSummary,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from mmthreads.harness.opencode.bodies import PartInput
    from mmthreads.harness.opencode.ids import IdSource
    from mmthreads.harness.opencode.wire import Session

__all__ = ["MessageOps"]

logger = logging.getLogger(__name__)


class MessageOps:
    """Message and part operations of ``OpenCodeState``."""

    if TYPE_CHECKING:
        ids: IdSource
        clock_ms: Callable[[], int]
        messages: dict[str, list[MessageRecord]]

        @property
        def current(self) -> bool: ...

        def session(self, session_id: str) -> Session: ...

        def touch(self, session: Session) -> None: ...

        def publish(self, session: Session, type_: str, properties: object) -> None: ...

        def _with_session(self, session: Session, **fields: object) -> dict[str, object]: ...

    def add_user_message(
        self,
        session: Session,
        parts: Sequence[PartInput],
        *,
        model: UserModel,
        agent: str,
        message_id: str | None = None,
    ) -> MessageRecord:
        """Store a prompt.

        Publishes, as in the recorded trace (lines 3-6): ``session.updated`` if the agent or
        model changed, ``message.updated``, ``message.part.updated`` per part, and
        ``session.updated`` again.
        """
        ref = ModelRef(id=model.model_id, provider_id=model.provider_id, variant="default")
        if session.agent != agent or session.model != ref:
            # The model is sticky: later prompts without one reuse it (reference §2.3).
            session.agent = agent
            session.model = ref
            self.touch(session)
        info = UserMessage(
            id=message_id or self.ids.ascending("msg"),
            session_id=session.id,
            time=MessageTime(created=self.clock_ms()),
            agent=agent,
            model=model,
        )
        record = MessageRecord(info=info)
        self.messages[session.id].append(record)
        self.message_updated(session, record)
        for part in self._user_parts(session, info.id, parts):
            self.put_part(session, record, part)
        self.touch(session)
        return record

    def _user_parts(
        self, session: Session, message_id: str, inputs: Sequence[PartInput]
    ) -> list[Part]:
        parts: list[Part] = []
        for item in inputs:
            if isinstance(item, TextPartInput):
                parts.append(
                    TextPart(
                        id=item.id or self.ids.ascending("prt"),
                        session_id=session.id,
                        message_id=message_id,
                        text=item.text,
                        synthetic=item.synthetic,
                    )
                )
            elif isinstance(item, FilePartInput):
                text = data_url_text(item.url) if item.mime == "text/plain" else None
                if text is not None:
                    # A text file is also read for the model as two synthetic text parts.
                    read_input = msgspec.json.encode({"filePath": item.filename}).decode()
                    called = f"Called the Read tool with the following input: {read_input}"
                    for synthetic in (called, text):
                        parts.append(
                            TextPart(
                                id=self.ids.ascending("prt"),
                                session_id=session.id,
                                message_id=message_id,
                                text=synthetic,
                                synthetic=True,
                            )
                        )
                parts.append(
                    FilePart(
                        id=item.id or self.ids.ascending("prt"),
                        session_id=session.id,
                        message_id=message_id,
                        mime=item.mime,
                        url=item.url,
                        filename=item.filename,
                        source=item.source,
                    )
                )
            else:
                logger.info("ignoring a %s part in a prompt", type(item).__name__)
        return parts

    def add_assistant_message(self, session: Session, user: MessageRecord) -> MessageRecord:
        """Start a step's assistant message; publishes ``message.updated``."""
        model = session.model or ModelRef(id="stub-model", provider_id="stub")
        info = AssistantMessage(
            id=self.ids.ascending("msg"),
            session_id=session.id,
            parent_id=user.info.id,
            mode=user.info.agent,
            agent=user.info.agent,
            path=MessagePath(cwd=session.directory, root=session.directory),
            cost=0,
            tokens=zero_tokens(),
            model_id=model.id,
            provider_id=model.provider_id,
            time=MessageTime(created=self.clock_ms()),
        )
        record = MessageRecord(info=info)
        self.messages[session.id].append(record)
        self.message_updated(session, record)
        return record

    def message_updated(self, session: Session, record: MessageRecord) -> None:
        """Publish ``message.updated`` with the message's current info."""
        self.publish(session, "message.updated", self._with_session(session, info=record.info))

    def put_part(
        self, session: Session, record: MessageRecord, part: Part, *, delta: str | None = None
    ) -> None:
        """Store ``part`` (new or changed) and publish ``message.part.updated``."""
        record.put(part)
        if self.current:
            props: dict[str, Any] = {"sessionID": session.id, "part": part, "time": self.clock_ms()}
        else:
            props = {"part": part} if delta is None else {"part": part, "delta": delta}
        self.publish(session, "message.part.updated", props)

    def stream_delta(
        self, session: Session, record: MessageRecord, part: TextPart | ReasoningPart, delta: str
    ) -> None:
        """Append ``delta`` to a text or reasoning part and publish it.

        ``current``: ``message.part.delta``; ``legacy``: a ``message.part.updated`` snapshot
        that carries ``delta``.
        """
        part.text += delta
        record.put(part)
        if self.current:
            props = {
                "sessionID": session.id,
                "messageID": record.info.id,
                "partID": part.id,
                "field": "text",
                "delta": delta,
            }
            self.publish(session, "message.part.delta", props)
        else:
            self.put_part(session, record, part, delta=delta)

    def summarize(self, session: Session, user: MessageRecord) -> None:
        """What the server's summary publishes at each step: ``session.updated`` (with
        ``summary``), ``session.diff`` and the user message with ``summary.diffs``."""
        if session.summary is None:
            session.summary = SessionSummary(additions=0, deletions=0, files=0)
        self.touch(session)
        self.publish(session, "session.diff", {"sessionID": session.id, "diff": []})
        assert isinstance(user.info, UserMessage)
        user.info.summary = UserSummary(diffs=list(user.diffs))
        self.message_updated(session, user)

    def add_usage(self, session: Session, tokens: Tokens) -> None:
        """Add a step's tokens to the session's counters (published with the next update)."""
        total = session.tokens
        total.input += tokens.input
        total.output += tokens.output
        total.reasoning += tokens.reasoning
        total.cache.read += tokens.cache.read
        total.cache.write += tokens.cache.write

    def record(self, session_id: str, message_id: str) -> MessageRecord | None:
        """One message of a session, or ``None``."""
        for record in self.messages.get(session_id, []):
            if record.info.id == message_id:
                return record
        return None

    def list_messages(
        self, session_id: str, *, limit: int | None = None, before: str | None = None
    ) -> tuple[list[MessageRecord], str | None]:
        """A page of messages in chronological order, and the cursor of the next (older) page.

        Raises:
            SessionNotFound: No such session.
            ValueError: ``before`` is not a cursor this server made.
        """
        records = list(self.messages.get(self.session(session_id).id, []))
        if before is not None:
            cursor_id = decode_cursor(before)
            records = [r for r in records if r.info.id < cursor_id]
        if limit is None or limit >= len(records):
            return records, None
        page = records[len(records) - limit :] if limit else []
        oldest = page[0] if page else records[-1]
        return page, encode_cursor(oldest.info.id, oldest.info.time.created)
