"""The events of one step of a turn: one model call, in the order of the recorded trace.

A step (reference §3.3) publishes ``step-start``; then either reasoning and text parts (each a
snapshot, deltas, a snapshot) or one tool part (``toolcalls.py``); then ``step-finish``, the
assistant ``message.updated`` with ``finish``, a ``patch`` part if files changed, and
``message.updated`` with ``time.completed``.  A step the "provider" refuses ends the turn with
``session.error`` (400) or retries until aborted (503 and 429: ``session.status`` retry).

``agent.py`` decides which step comes next and when a turn ends; this module only publishes.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio

from mmthreads.harness import script
from mmthreads.harness.opencode.catalog import STUB_BASE_URL
from mmthreads.harness.opencode.wire import (
    AssistantMessage,
    Cache,
    FilePart,
    NamedError,
    PartTime,
    PatchPart,
    ReasoningPart,
    StepFinishPart,
    StepStartPart,
    TextPart,
    Tokens,
    ToolPart,
)

if TYPE_CHECKING:
    from mmthreads.harness.opencode.agent import AgentSettings
    from mmthreads.harness.opencode.state import MessageRecord, OpenCodeState
    from mmthreads.harness.opencode.toolcalls import ToolOutcome
    from mmthreads.harness.opencode.wire import Session

__all__ = ["BUSY", "Steps", "assistant_info"]

#: The ``session.status`` of a session with a turn.
BUSY: Final = {"type": "busy"}
#: The usage the recorded stub reported for every model call.
_STEP_INPUT_TOKENS: Final = 42
_STEP_OUTPUT_TOKENS: Final = 7


class Steps:
    """Publishes the parts and message updates of steps.

    Args:
        state: The stand-in's state.
        settings: Pacing (chunk and retry delays).
    """

    def __init__(self, state: OpenCodeState, settings: AgentSettings) -> None:
        self._state = state
        self.settings = settings

    def start(self, session: Session, assistant: MessageRecord) -> str:
        """Publish ``step-start``.  Returns the instance's snapshot before the step."""
        state = self._state
        before = state.instance(session.directory).snapshot
        state.put_part(
            session,
            assistant,
            StepStartPart(
                id=state.ids.ascending("prt"),
                session_id=session.id,
                message_id=assistant.info.id,
                snapshot=before,
            ),
        )
        return before

    def finish(
        self,
        session: Session,
        assistant: MessageRecord,
        before: str,
        outcome: ToolOutcome | None,
    ) -> None:
        """Publish the end of a step: ``step-finish``, ``finish``, a patch, ``completed``.

        Args:
            session: The session.
            assistant: The step's assistant message.
            before: The snapshot ``start`` returned.
            outcome: The tool call's outcome; ``None`` for a text step (finish ``stop``).
        """
        state = self._state
        reason = "stop" if outcome is None else "tool-calls"
        tokens = Tokens(
            total=_STEP_INPUT_TOKENS + _STEP_OUTPUT_TOKENS,
            input=_STEP_INPUT_TOKENS,
            output=_STEP_OUTPUT_TOKENS,
            reasoning=0,
            cache=Cache(read=0, write=0),
        )
        finish = StepFinishPart(
            id=state.ids.ascending("prt"),
            session_id=session.id,
            message_id=assistant.info.id,
            reason=reason,
            snapshot=state.instance(session.directory).snapshot,
            cost=0,
            tokens=tokens,
        )
        state.put_part(session, assistant, finish)
        state.add_usage(session, tokens)
        info = assistant_info(assistant)
        info.tokens = msgspec.structs.replace(tokens, cache=Cache(read=0, write=0))
        info.finish = reason
        state.message_updated(session, assistant)
        if outcome is not None and outcome.patch_files:
            patch = PatchPart(
                id=state.ids.ascending("prt"),
                session_id=session.id,
                message_id=info.id,
                hash=before,
                files=outcome.patch_files,
            )
            state.put_part(session, assistant, patch)
        info.time.completed = state.clock_ms()
        state.message_updated(session, assistant)

    def fail(self, session: Session, assistant: MessageRecord, step: script.Fail) -> None:
        """End the step with the provider's error: ``session.error`` and an ``APIError``."""
        state = self._state
        body = msgspec.json.encode(
            {"error": {"message": step.message, "type": "invalid_request_error"}}
        ).decode()
        error = NamedError(
            name="APIError",
            data={
                "message": step.message,
                "statusCode": step.status,
                "isRetryable": False,
                "responseHeaders": {"content-type": "application/json"},
                "responseBody": body,
                "metadata": {"url": f"{STUB_BASE_URL}/chat/completions"},
            },
        )
        state.session_error(session, error)
        state.set_status(session, None)
        assistant_info(assistant).error = error
        assistant.info.time.completed = state.clock_ms()
        state.message_updated(session, assistant)
        state.set_status(session, None)

    async def retry_forever(self, session: Session, step: script.Fail) -> None:
        """Publish ``session.status`` retry, with a doubling delay, until cancelled (aborted)."""
        attempt = 0
        while True:
            attempt += 1
            delay = min(
                self.settings.retry_initial_delay * 2 ** (attempt - 1),
                self.settings.retry_max_delay,
            )
            status: dict[str, Any] = {
                "type": "retry",
                "attempt": attempt,
                "message": step.message,
                "next": self._state.clock_ms() + int(delay * 1000),
            }
            self._state.set_status(session, status)
            await trio.sleep(delay)
            self._state.set_status(session, BUSY)

    async def reply(
        self,
        open_parts: dict[str, TextPart | ReasoningPart | ToolPart],
        session: Session,
        assistant: MessageRecord,
        step: script.Reply,
    ) -> None:
        """Stream the step's reasoning, if any, then its text.

        Args:
            open_parts: Where a streaming part stays until it ends (an abort ends it).
            session: The session.
            assistant: The step's assistant message.
            step: What to say.
        """
        state = self._state
        if step.reasoning:
            reasoning = ReasoningPart(
                id=state.ids.ascending("prt"),
                session_id=session.id,
                message_id=assistant.info.id,
                text="",
                time=PartTime(start=state.clock_ms()),
            )
            delay = self.settings.chunk_delay
            await self._stream(open_parts, session, assistant, reasoning, [step.reasoning], delay)
        text = TextPart(
            id=state.ids.ascending("prt"),
            session_id=session.id,
            message_id=assistant.info.id,
            text="",
            time=PartTime(start=state.clock_ms()),
        )
        delay = self.settings.slow_chunk_delay if step.slow_chunks else self.settings.chunk_delay
        chunks = script.chunk_text(step.text, step.slow_chunks)
        await self._stream(open_parts, session, assistant, text, chunks, delay)
        if step.file_name:
            data = base64.b64encode(script.sent_file_content(step.file_name)).decode("ascii")
            file = FilePart(
                id=state.ids.ascending("prt"),
                session_id=session.id,
                message_id=assistant.info.id,
                mime="text/plain",
                url=f"data:text/plain;base64,{data}",
                filename=step.file_name,
            )
            state.put_part(session, assistant, file)

    async def _stream(
        self,
        open_parts: dict[str, TextPart | ReasoningPart | ToolPart],
        session: Session,
        assistant: MessageRecord,
        part: TextPart | ReasoningPart,
        chunks: list[str],
        delay: float,
    ) -> None:
        state = self._state
        open_parts[part.id] = part
        state.put_part(session, assistant, part)
        for i, chunk in enumerate(chunks):
            if i:
                await trio.sleep(delay)
            state.stream_delta(session, assistant, part, chunk)
        await trio.sleep(delay)
        del open_parts[part.id]
        assert part.time is not None
        part.time.end = state.clock_ms()
        state.put_part(session, assistant, part)


def assistant_info(record: MessageRecord) -> AssistantMessage:
    """The assistant message of ``record`` (which must be one)."""
    info = record.info
    assert isinstance(info, AssistantMessage)
    return info
