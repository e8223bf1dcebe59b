"""The ASGI app of the stand-in: auth, directory, fault points, routing, SSE.

Per request, in order:

1. Basic auth when a password is set (``Authorization`` or ``?auth_token=``), else 401 with
   ``WWW-Authenticate: Basic realm="Secure Area"``;
2. the directory: ``?directory=``, then the (URI-encoded) ``x-opencode-directory`` header, then
   the server's own;
3. the fault point ``http:<METHOD> <path>``: ``Status`` answers with that status, ``Delay``
   waits, ``Drop`` closes the connection without an answer (through the ``drop`` callable the
   server passes in: ``TcpRelay.abort``, see ``mmthreads/harness/relay.py``);
4. the route, or 200 ``text/html`` for an unknown one (the real server's embedded web UI);
5. for ``GET /event`` and ``GET /global/event``, the fault point ``sse:connect`` and then the
   stream (``stream.py``) until it is cut or the client goes away.

Every request is recorded on the stand-in (``OpenCodeStandIn.requests``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, unquote

import msgspec
import trio

from mmthreads.harness.asgi import acknowledge_lifespan
from mmthreads.harness.faults import Delay, Drop, Ok, Status
from mmthreads.harness.opencode.rest import Request, Response, WaitForTurn, json_response
from mmthreads.harness.opencode.routes import dispatch, match_route
from mmthreads.harness.opencode.standin import RecordedRequest

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mmthreads.harness.faults import Outcome
    from mmthreads.harness.opencode.standin import OpenCodeStandIn

    Receive = Callable[[], Awaitable[dict[str, Any]]]
    Send = Callable[[dict[str, Any]], Awaitable[None]]

__all__ = ["OpenCodeApp"]

logger = logging.getLogger(__name__)

_WEB_UI: Final = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>OpenCode</title></head>'
    b'<body><div id="root"></div><script type="module" src="/assets/index.js"></script></body>'
    b"</html>"
)
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_STREAM_PATHS: Final = ("/event", "/global/event")


class OpenCodeApp:
    """ASGI application serving an ``OpenCodeStandIn``.

    Args:
        standin: The stand-in to serve.
        drop: Closes the client connection of an ASGI ``scope["client"]`` address without a
            response; returns ``False`` if it cannot.  Without it, ``Drop`` answers 500.
    """

    def __init__(
        self,
        standin: OpenCodeStandIn,
        *,
        drop: Callable[[tuple[str, int] | None], bool] | None = None,
    ) -> None:
        self.standin = standin
        self._drop = drop

    def __repr__(self) -> str:
        return f"<OpenCodeApp {self.standin!r}>"

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI entry point (``http`` and ``lifespan`` scopes)."""
        if scope["type"] == "lifespan":
            await acknowledge_lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        standin = self.standin
        method: str = scope["method"]
        path: str = scope["path"]
        raw_query = bytes(scope.get("query_string", b"")).decode("latin-1")
        query = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        headers = {
            bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
            for k, v in scope.get("headers", [])
        }
        streaming = method == "GET" and path in _STREAM_PATHS
        body = b"" if streaming else await _read_body(receive)
        directory = (
            query.get("directory")
            or unquote(headers.get("x-opencode-directory", ""))
            or standin.state.default_directory
        )

        applied: list[Outcome] = []

        def record(status: int | None, fault: Outcome | None = None) -> None:
            fault = fault or (applied[-1] if applied else None)
            standin.record_request(
                RecordedRequest(
                    method=method,
                    path=path,
                    query=raw_query,
                    directory=directory,
                    body=body,
                    status=status,
                    fault=repr(fault) if fault is not None else None,
                )
            )

        if not self._authorized(headers, query):
            record(401)
            await _respond(
                send,
                Response(
                    status=401,
                    body=b"Unauthorized",
                    content_type="text/plain",
                    headers=[("www-authenticate", 'Basic realm="Secure Area"')],
                ),
            )
            return
        for point in (f"http:{method} {path}", *(("sse:connect",) if streaming else ())):
            outcome = standin.plan.decide(point, now=trio.current_time())
            if not isinstance(outcome, Ok):
                applied.append(outcome)
            if not await self._apply_fault(point, outcome, scope, receive, send, record):
                return
        if not path.startswith("/global/"):
            standin.state.instance(directory)
        if streaming:
            record(200)
            await self._stream(None if path == "/global/event" else directory, receive, send)
            return
        found = match_route(standin, method, path)
        if found is None:
            response = Response(status=200, body=_WEB_UI, content_type="text/html;charset=UTF-8")
        else:
            handler, params = found
            request = Request(
                method=method,
                path=path,
                query=query,
                headers=headers,
                body=body,
                directory=directory,
                params=params,
            )
            answer = dispatch(standin, handler, request)
            if isinstance(answer, WaitForTurn):
                await answer.job.done.wait()
                result = answer.job.result
                response = json_response(result.to_wire() if result is not None else None)
            else:
                response = answer
        record(response.status)
        await _respond(send, response)

    def _authorized(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        password = self.standin.password
        if password is None:
            return True
        expected = f"{self.standin.username}:{password}"
        given: str | None = None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            given = credentials.strip()
        elif "auth_token" in query:
            given = query["auth_token"]
        if not given:
            return False
        try:
            return base64.b64decode(given, validate=True).decode() == expected
        except (binascii.Error, UnicodeDecodeError):
            return False

    async def _apply_fault(
        self,
        point: str,
        outcome: Outcome,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        record: Callable[[int | None, Outcome | None], None],
    ) -> bool:
        """Act on a fault outcome; ``False`` if the request was answered (or dropped)."""
        match outcome:
            case Ok():
                return True
            case Delay(seconds=seconds):
                logger.info("%s: delayed %.3f s", point, seconds)
                await trio.sleep(seconds)
                return True
            case Status(status=status, retry_after=retry_after, body=body):
                logger.info("%s: answered %d", point, status)
                text = body.encode() if body is not None else _fault_body(status)
                headers = [("retry-after", f"{retry_after:g}")] if retry_after is not None else []
                record(status, outcome)
                await _respond(send, Response(status=status, body=text, headers=headers))
                return False
            case Drop():
                logger.info("%s: dropped", point)
                record(None, outcome)
                if self._drop is not None and self._drop(scope.get("client")):
                    await _wait_disconnect(receive)
                    return False
                logger.warning("%s: cannot drop without the relay; answering 500", point)
                await _respond(send, Response(status=500, body=_fault_body(500)))
                return False
            case _:
                logger.warning("%s: %r does not apply to HTTP; ignored", point, outcome)
                return True

    async def _stream(self, directory: str | None, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

        async def send_frame(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                await _wait_disconnect(receive)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            await self.standin.stream_events(directory, send_frame)
            nursery.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _fault_body(status: int) -> bytes:
    message = f"injected fault: HTTP {status}"
    return msgspec.json.encode({"name": "UnknownError", "data": {"message": message}})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(send: Send, response: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if response.content_type is not None:
        headers.insert(0, (b"content-type", response.content_type.encode("latin-1")))
    if response.status != 204:
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})
