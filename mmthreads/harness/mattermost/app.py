"""The ASGI application: REST over the ``http`` scope, the WebSocket over ``websocket``.

This layer only moves bytes and applies faults; everything it answers comes from the sans-IO
``rest.handle`` and ``Hub``.  Fault points (see ``mmthreads.harness.faults``):
``http:<METHOD> <path>`` before a request is handled, ``ws:connect`` before an upgrade is
accepted, ``ws:event:<name>`` before each event is written to a socket.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import TYPE_CHECKING, Any, Final

import trio

from mmthreads.harness.asgi import acknowledge_lifespan
from mmthreads.harness.faults import CloseSocket, Delay, Drop, Ok, Outcome, Status
from mmthreads.harness.mattermost.emulator import RequestRecord
from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.rest import Request, Response, error_response, handle, token_of
from mmthreads.harness.mattermost.websocket import WebSocketSession

# Registers the REST handlers.
from mmthreads.harness.mattermost import routes  # noqa: F401  # isort: skip

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from mmthreads.harness.mattermost.emulator import MattermostEmulator

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["MattermostApp", "fault_response", "format_retry_after"]

logger = logging.getLogger(__name__)

WEBSOCKET_PATHS: Final = ("/api/v4/websocket", "/api/v4/websocket/")
_FILES_MARGIN: Final = 1024 * 1024


def format_retry_after(seconds: float) -> str:
    """``Retry-After`` for a fault: whole seconds as an integer, else the exact decimal."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def fault_response(outcome: Status, request: Request, request_id: str) -> Response:
    """The response a ``Status`` fault answers with.

    429 is plain text ``limit exceeded`` as the real rate limiter writes it; other statuses get
    an ``AppError`` body unless the plan gives one.
    """
    if outcome.status == 429 and outcome.body is None:
        response = Response(
            status=429,
            headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Content-Type-Options", "nosniff"),
            ],
            body=b"limit exceeded\n",
        )
    elif outcome.body is not None:
        response = Response(
            status=outcome.status,
            headers=[("Content-Type", "application/json")],
            body=outcome.body.encode(),
        )
    else:
        error = AppError("mmthreads.harness.injected_fault", outcome.status)
        error.message = f"Injected fault: HTTP {outcome.status}."
        response = error_response(error, request, request_id)
    if outcome.retry_after is not None:
        response.headers.append(("Retry-After", format_retry_after(outcome.retry_after)))
    return response


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _client(scope: Scope) -> tuple[str, int] | None:
    client = scope.get("client")
    return (str(client[0]), int(client[1])) if client else None


class MattermostApp:
    """ASGI 3 application serving one ``MattermostEmulator``."""

    def __init__(self, emulator: MattermostEmulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await acknowledge_lifespan(receive, send)

    async def _drop(self, scope: Scope, receive: Receive) -> None:
        # Close the TCP connection without answering, then wait for the server to notice.
        client = _client(scope)
        abort = self.emulator.abort_transport
        if client is None or abort is None or not abort(client):
            logger.warning(
                "cannot drop the connection of %s: the server answers 500 instead", client
            )
            return
        while (await receive())["type"] not in ("http.disconnect", "websocket.disconnect"):
            pass

    async def _apply(self, target: str) -> Outcome:
        outcome = self.emulator.plan.decide(target, now=trio.current_time())
        if isinstance(outcome, Delay):
            await trio.sleep(outcome.seconds)
            return Ok()
        return outcome

    def _rate_limited(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[Response | None, list[tuple[str, str]]]:
        limiter = self.emulator.rate_limiter
        if limiter is None:
            return None, []
        token, _ = token_of(Request(method="", path="", headers=headers))
        client = _client(scope)
        key = token if token and limiter.config.vary_by_user else str(client[0] if client else "")
        decision = limiter.check(key, trio.current_time())
        if not decision.limited:
            return None, decision.headers()
        response = Response(
            status=429,
            headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Content-Type-Options", "nosniff"),
                *decision.headers(),
            ],
            body=b"limit exceeded\n",
        )
        return response, []

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        emulator = self.emulator
        method = str(scope["method"]).upper()
        path = str(scope["path"])
        headers = _headers(scope)
        query = urllib.parse.parse_qs(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        request = Request(method=method, path=path, query=query, headers=headers)
        request_id = emulator.state.new_id()
        outcome = await self._apply(f"http:{method} {path}")
        if isinstance(outcome, (Drop, CloseSocket)):
            await self._drop(scope, receive)
            emulator.requests.append(RequestRecord(method, path, 0, "", trio.current_time()))
            return
        if isinstance(outcome, Status):
            await self._respond(send, fault_response(outcome, request, request_id), request)
            return
        limited, limit_headers = self._rate_limited(scope, headers)
        if limited is not None:
            await self._respond(send, limited, request)
            return
        limit = emulator.state.limits.max_payload_size
        if method == "POST" and path.rstrip("/") == "/api/v4/files":
            limit = emulator.state.limits.max_file_size + _FILES_MARGIN
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if len(body) > limit:
                error = AppError("api.context.request_body_too_large.app_error", 413)
                await self._respond(send, error_response(error, request, request_id), request)
                return
            if not message.get("more_body", False):
                break
        request.body = bytes(body)
        response = handle(emulator, request)
        emulator.flush()
        response.headers.extend(limit_headers)
        await self._respond(send, response, request)

    async def _respond(self, send: Send, response: Response, request: Request) -> None:
        token, _ = token_of(request)
        user_id = self.emulator.state.tokens.get(token or "", "")
        self.emulator.requests.append(
            RequestRecord(
                request.method, request.path, response.status, user_id, trio.current_time()
            )
        )
        self.emulator.notify()
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _reject(self, send: Send, response: Response) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send(
            {"type": "websocket.http.response.start", "status": response.status, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": response.body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        emulator = self.emulator
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = _headers(scope)
        request = Request(method="GET", path=str(scope["path"]), headers=headers)
        request_id = emulator.state.new_id()
        if request.path not in WEBSOCKET_PATHS:
            await self._reject(
                send,
                error_response(AppError("api.context.404.app_error", 404), request, request_id),
            )
            return
        limited, _ = self._rate_limited(scope, headers)
        if limited is not None:
            await self._reject(send, limited)
            return
        if trio.current_time() < emulator.refuse_websockets_until:
            await self._reject(send, fault_response(Status(status=503), request, request_id))
            return
        outcome = await self._apply("ws:connect")
        if isinstance(outcome, Status):
            await self._reject(send, fault_response(outcome, request, request_id))
            return
        if isinstance(outcome, Drop):
            await self._drop(scope, receive)
            return
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        session = WebSocketSession(emulator, receive, send, client=_client(scope))
        if isinstance(outcome, CloseSocket):
            await send({"type": "websocket.accept"})
            await session.close_now(outcome.code)
            return
        token, _ = token_of(request)
        user_id = emulator.state.tokens.get(token or "")
        await session.run(
            user_id,
            connection_id=query.get("connection_id", [""])[0],
            sequence_number=query.get("sequence_number", [None])[0],
        )
