"""The stub model's state: how it answers each request, and the record of what it received.

:class:`StubModel` is the only place decisions are made: it reads a request, asks the scripted
agent (:func:`~mmthreads.harness.script.plan_step`) for the step, and returns an
:class:`Answer` (a status plus a body or SSE frames).  The ASGI app in
:mod:`~mmthreads.harness.stub_model.app` sends the answer and updates the record while it
streams; tests and drills read the record and wait on it with :meth:`StubModel.wait_request`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, TypeAlias

import msgspec
import trio

from mmthreads.harness.faults import FaultPlan
from mmthreads.harness.script import CHUNK_DELAY, Attachment, Fail, Reply, Step, plan_step
from mmthreads.harness.stub_model.request import (
    ChatMessage,
    ChatRequest,
    Turn,
    decode_request,
    message_text,
    read_turn,
)
from mmthreads.harness.stub_model.response import (
    Frame,
    completion_body,
    error_body,
    stream_frames,
    title_for,
    usage_for,
)

__all__ = [
    "COMPLETIONS_PATH",
    "FAULT_POINT",
    "JSON_HEADERS",
    "SSE_HEADERS",
    "STUB_MODEL_ID",
    "Answer",
    "Planner",
    "RecordedRequest",
    "StubModel",
]

logger = logging.getLogger(__name__)

#: How a stub model decides each step: ``planner(prompt, done_tools, attachments, tool_results)``.
Planner: TypeAlias = Callable[[str, int, tuple[Attachment, ...], tuple[str, ...]], Step]

#: The route OpenCode posts to (``baseURL`` + ``/chat/completions``).
COMPLETIONS_PATH: Final = "/v1/chat/completions"

#: The model id the stub reports in ``GET /v1/models`` (any requested id is accepted).
STUB_MODEL_ID: Final = "stub-model"

#: The fault point the stub asks its fault plan about, once per completions request.
FAULT_POINT: Final = f"http:POST {COMPLETIONS_PATH}"

#: Headers of JSON answers.
JSON_HEADERS: Final = ((b"content-type", b"application/json"),)
#: Headers of streamed answers.
SSE_HEADERS: Final = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))


class RecordedRequest(msgspec.Struct, kw_only=True):
    """One request the stub model received, and how it answered.

    The server updates ``finished`` and ``disconnected`` while the answer streams; the other
    fields do not change.
    """

    #: Position in :attr:`StubModel.requests`.
    index: int
    method: str
    path: str
    #: The raw request body.
    body: bytes
    #: The decoded body; ``None`` when it was not a chat-completions request.
    request: ChatRequest | None = None
    #: The scripted agent's inputs read from the request.
    turn: Turn | None = None
    #: The answer: a script step, or the title given for a title request.
    step: Step | None = None
    #: HTTP status of the answer.
    status: int = 200
    #: The fault the fault plan injected, if any.
    fault: str = ""
    #: The whole answer was sent.
    finished: bool = False
    #: The client went away before the answer was complete (an abort).
    disconnected: bool = False

    @property
    def messages(self) -> list[ChatMessage]:
        """The request's messages (empty if it could not be decoded)."""
        return self.request.messages if self.request is not None else []

    @property
    def tools(self) -> tuple[str, ...]:
        """The names of the tools offered with the request."""
        return self.request.tool_names if self.request is not None else ()

    @property
    def prompt(self) -> str:
        """The user's prompt as the stub read it."""
        return self.turn.prompt if self.turn is not None else ""

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        """The attachments the stub found in the last user message."""
        return self.turn.attachments if self.turn is not None else ()

    @property
    def is_title(self) -> bool:
        """Whether this was a title-generation request (no tools offered)."""
        return self.turn is not None and self.turn.is_title

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed answer."""
        return self.request is not None and self.request.stream

    def text(self) -> str:
        """All text of all messages, for broad assertions ("the model received X")."""
        return "\n".join(message_text(m) for m in self.messages)


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """What to send back: a status, and either a body or SSE frames."""

    status: int
    body: bytes = b""
    frames: list[Frame] = msgspec.field(default_factory=list)
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def streamed(self) -> bool:
        """Whether the answer is an SSE stream."""
        return bool(self.frames)


class StubModel:
    """An OpenAI-compatible model that answers from the scripted agent and records its traffic.

    Args:
        chunk_delay: Seconds before each streamed text piece or argument fragment;
            :data:`~mmthreads.harness.script.CHUNK_DELAY` when ``None``.
        planner: Decides each step, called as ``planner(prompt, done_tools, attachments,
            tool_results)``; the shared script by default.
        plan: Faults to inject at the fault point ``http:POST /v1/chat/completions``.
    """

    def __init__(
        self,
        *,
        chunk_delay: float | None = None,
        planner: Planner = plan_step,
        plan: FaultPlan | None = None,
    ) -> None:
        self.chunk_delay = CHUNK_DELAY if chunk_delay is None else chunk_delay
        self.planner = planner
        self.plan = plan if plan is not None else FaultPlan()
        #: Every request received, in order.
        self.requests: list[RecordedRequest] = []
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return f"<StubModel requests={len(self.requests)} chunk_delay={self.chunk_delay}>"

    def record(self, method: str, path: str, body: bytes) -> RecordedRequest:
        """Record a request, with the scripted agent's inputs read from it, before answering it.

        Args:
            method: The HTTP method.
            path: The request path.
            body: The raw body.

        Returns:
            The new record (its ``request`` and ``turn`` are ``None`` if the body is not a
            chat-completions request).
        """
        recorded = RecordedRequest(index=len(self.requests), method=method, path=path, body=body)
        try:
            recorded.request = decode_request(body)
        except msgspec.DecodeError as exc:
            logger.warning("%r: request %d is not a chat request: %s", self, recorded.index, exc)
        else:
            recorded.turn = read_turn(recorded.request)
        self.requests.append(recorded)
        self.notify()
        return recorded

    def notify(self) -> None:
        """Wake the tasks in :meth:`wait_request` (after a record changed)."""
        self._changed.set()
        self._changed = trio.Event()

    def answer(self, recorded: RecordedRequest, *, created: int) -> Answer:
        """Decide the answer to a recorded request and note the step in the record.

        Args:
            recorded: The request, as returned by :meth:`record`.
            created: The Unix time to put in the answer's ``created`` field.

        Returns:
            The status and the body or stream frames to send.
        """
        request, turn = recorded.request, recorded.turn
        if request is None or turn is None:
            recorded.status = 400
            fail = Fail(status=400, message="invalid request: expected a chat-completions body")
            return Answer(status=400, body=error_body(fail), headers=JSON_HEADERS)
        step: Step
        if turn.is_title:
            step = Reply(text=title_for(turn.prompt))
        else:
            step = self.planner(turn.prompt, turn.done_tools, turn.attachments, turn.tool_results)
        recorded.step = step
        logger.debug("%r: request %d %r -> %r", self, recorded.index, turn, step)
        if isinstance(step, Fail):
            recorded.status = step.status
            return Answer(status=step.status, body=error_body(step), headers=JSON_HEADERS)
        usage = usage_for(sum(len(message_text(m)) for m in request.messages), step)
        completion_id = f"chatcmpl-stub-{recorded.index}"
        call_id = f"call_stub_{recorded.index}"
        name = request.model or STUB_MODEL_ID
        if request.stream:
            frames = stream_frames(
                step,
                completion_id=completion_id,
                call_id=call_id,
                model=name,
                created=created,
                usage=usage,
                chunk_delay=self.chunk_delay,
            )
            return Answer(status=200, frames=frames, headers=SSE_HEADERS)
        body = completion_body(
            step,
            completion_id=completion_id,
            call_id=call_id,
            model=name,
            created=created,
            usage=usage,
        )
        return Answer(status=200, body=body, headers=JSON_HEADERS)

    async def wait_request(
        self,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        *,
        start: int = 0,
    ) -> RecordedRequest:
        """Wait for a request (from index ``start`` on) that matches ``predicate``.

        Requests already recorded count, so there is no race with the request arriving first.
        A request is offered to ``predicate`` again whenever the server updates its record.

        Args:
            predicate: Condition on the record; any request matches when ``None``.
            start: Ignore requests recorded before this index.

        Returns:
            The first matching request.
        """
        while True:
            for recorded in self.requests[start:]:
                if predicate is None or predicate(recorded):
                    return recorded
            await self._changed.wait()
