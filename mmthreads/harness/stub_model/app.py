"""The stub model's ASGI application: it moves bytes, the :class:`StubModel` decides.

Routes: ``POST /v1/chat/completions`` (also ``/chat/completions``) and ``GET /v1/models``;
anything else is a 404 with an OpenAI-style error body.  A streamed answer is sent frame by
frame, sleeping each frame's delay; when the client goes away (OpenCode aborting a turn) the
stream stops and the record says ``disconnected``.

Faults from the model's plan apply at the fault point ``http:POST /v1/chat/completions``:
``Status`` answers with that status (and ``Retry-After``), ``Delay`` and ``Silence`` wait
before answering, ``CutStream`` ends the stream after its first chunk, and ``Drop`` or
``CloseSocket`` end it before any chunk.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio

from mmthreads.harness.asgi import acknowledge_lifespan
from mmthreads.harness.faults import CloseSocket, CutStream, Delay, Drop, Ok, Silence, Status
from mmthreads.harness.script import Fail
from mmthreads.harness.stub_model.response import error_body
from mmthreads.harness.stub_model.state import (
    COMPLETIONS_PATH,
    FAULT_POINT,
    JSON_HEADERS,
    STUB_MODEL_ID,
    RecordedRequest,
    StubModel,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hypercorn.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        HTTPScope,
        Scope,
    )

__all__ = ["StubModelApp"]

logger = logging.getLogger(__name__)

_MODELS_PATHS = ("/v1/models", "/models")
_COMPLETIONS_PATHS = (COMPLETIONS_PATH, "/chat/completions")


class StubModelApp:
    """The ASGI application serving a :class:`StubModel`.

    Args:
        model: The state that decides the answers and keeps the record.
    """

    def __init__(self, model: StubModel) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"<StubModelApp model={self.model!r}>"

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Handle one ASGI scope: lifespan is acknowledged, WebSockets are ignored."""
        if scope["type"] == "lifespan":
            await acknowledge_lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        method = scope["method"]
        path = scope["path"].rstrip("/")
        if method == "GET" and path in _MODELS_PATHS:
            listing = (
                b'{"object":"list","data":[{"id":"'
                + STUB_MODEL_ID.encode()
                + b'","object":"model"}]}'
            )
            await _respond(send, 200, listing, JSON_HEADERS)
        elif method == "POST" and path in _COMPLETIONS_PATHS:
            body = await _read_body(receive)
            await self._complete(self.model.record(method, path, body), receive, send)
        else:
            fail = Fail(status=404, message=f"no route {method} {path}")
            await _respond(send, 404, error_body(fail), JSON_HEADERS)

    async def _complete(
        self, recorded: RecordedRequest, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        model = self.model
        outcome = model.plan.decide(FAULT_POINT, now=trio.current_time())
        if not isinstance(outcome, Ok):
            recorded.fault = type(outcome).__name__
            logger.info("%r: fault %r for request %d", model, outcome, recorded.index)
        if isinstance(outcome, Delay | Silence):
            await trio.sleep(outcome.seconds)
        if isinstance(outcome, Status):
            recorded.status = outcome.status
            headers = list(JSON_HEADERS)
            if outcome.retry_after is not None:
                headers.append((b"retry-after", f"{outcome.retry_after:g}".encode()))
            fail = Fail(status=outcome.status, message=f"stub fault {outcome.status}")
            payload = outcome.body.encode() if outcome.body is not None else error_body(fail)
            await _respond(send, outcome.status, payload, headers)
            model.notify()
            return
        answer = model.answer(recorded, created=int(time.time()))
        if not answer.streamed:
            await _respond(send, answer.status, answer.body, answer.headers)
            recorded.finished = True
            model.notify()
            return
        frames = answer.frames
        if isinstance(outcome, Drop | CloseSocket):
            frames = []
        elif isinstance(outcome, CutStream):
            frames = frames[:1]
        await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
        sent = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_disconnect, receive, nursery.cancel_scope)
            for frame in frames:
                if frame.delay > 0:
                    await trio.sleep(frame.delay)
                await send({"type": "http.response.body", "body": frame.data, "more_body": True})
                sent += 1
            # Clients may hang up as soon as they read [DONE]: the answer is complete already.
            recorded.finished = sent == len(answer.frames)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            nursery.cancel_scope.cancel()
        if sent < len(frames):
            recorded.disconnected = True
            logger.debug("%r: client left during request %d", model, recorded.index)
        model.notify()


async def _watch_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
    """Stop streaming when the client goes away (OpenCode aborting a turn)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _read_body(receive: ASGIReceiveCallable) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message["body"])
        if not message["more_body"]:
            break
    return b"".join(chunks)


async def _respond(
    send: ASGISendCallable, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
