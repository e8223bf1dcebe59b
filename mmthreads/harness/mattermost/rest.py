"""REST v4, sans-IO: a request in, a response out (the ASGI layer only moves bytes).

``handle(emulator, request)`` authenticates, routes and renders exactly what the server's
``web/handlers.go`` would: ``Content-Type: application/json`` (no charset), ``X-Request-Id``,
``X-Version-Id``, ``AppError`` bodies.  The handlers themselves live in ``routes.py``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.models import encode
from mmthreads.harness.mattermost.version import VERSION_ID

if TYPE_CHECKING:
    from mmthreads.harness.mattermost.emulator import MattermostEmulator

__all__ = ["Context", "Request", "Response", "Route", "handle", "json_response", "token_of"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
API_PREFIX: Final = "/api/v4"


class Request(msgspec.Struct, kw_only=True):
    """An HTTP request as the handlers see it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, list[str]] = msgspec.field(default_factory=dict)
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: bytes = b""

    def arg(self, name: str, default: str = "") -> str:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default


class Response(msgspec.Struct, kw_only=True):
    """An HTTP response."""

    status: int
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Context:
    """What a handler gets: the emulator, the request, the caller and the request id."""

    def __init__(self, emulator: MattermostEmulator, request: Request, request_id: str) -> None:
        self.emulator = emulator
        self.state = emulator.state
        self.request = request
        self.request_id = request_id
        self.actor = ""

    def decode(self, type_: type[T], name: str) -> T:
        """Decode the JSON body; 400 ``invalid_param`` (``name``) if it does not fit."""
        try:
            return msgspec.json.decode(self.request.body, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise AppError.invalid_param(name) from None


class Route(msgspec.Struct, frozen=True):
    """``method`` + path pattern (``{name}`` matches one path segment) -> handler."""

    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Context, dict[str, str]], Response]
    auth: bool = True


def route(method: str, template: str, *, auth: bool = True) -> Callable[..., Any]:
    """Decorator registering a handler for ``method`` and ``template`` in ``ROUTES``."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)

    def register(fn: Callable[[Context, dict[str, str]], Response]) -> Callable[..., Any]:
        ROUTES.append(Route(method, re.compile(regex + "/?"), fn, auth))
        return fn

    return register


ROUTES: list[Route] = []


def json_response(
    value: object, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON response with the exact ``Content-Type: application/json``."""
    return Response(
        status=status,
        headers=[("Content-Type", "application/json"), *(headers or [])],
        body=encode(value),
    )


STATUS_OK: Final = {"status": "OK"}


def token_of(request: Request) -> tuple[str | None, bool]:
    """The session token of a request and whether it came from the query string.

    Order as ``app.ParseAuthTokenFromRequest``: cookie ``MMAUTHTOKEN``, then
    ``Authorization: Bearer`` / ``Token`` (scheme case-insensitive), then ``?access_token=``.
    """
    for cookie in request.headers.get("cookie", "").split(";"):
        name, _, value = cookie.strip().partition("=")
        if name == "MMAUTHTOKEN" and value:
            return value, False
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip(), False
    query_token = request.arg("access_token")
    if query_token:
        return query_token, True
    return None, False


def _common_headers(request: Request, request_id: str) -> list[tuple[str, str]]:
    headers = [
        ("X-Request-Id", request_id),
        ("X-Version-Id", VERSION_ID),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]
    if request.method == "GET":
        headers.append(("Expires", "0"))
    return headers


def error_response(error: AppError, request: Request, request_id: str) -> Response:
    """The ``AppError`` JSON response for ``error``."""
    response = json_response(error.body(request_id), error.status)
    response.headers.extend(_common_headers(request, request_id))
    return response


def normalize_path(path: str) -> str:
    """Collapse repeated slashes (mattermostdriver asks for ``/posts/<id>//reactions``)."""
    return re.sub(r"/{2,}", "/", path)


def handle(emulator: MattermostEmulator, request: Request) -> Response:
    """Answer one REST request; state changes leave their events in the state's outbox."""
    request_id = emulator.state.new_id()
    ctx = Context(emulator, request, request_id)
    path = normalize_path(request.path)
    try:
        if not path.startswith(API_PREFIX + "/"):
            raise AppError("api.context.404.app_error", 404)
        sub = path[len(API_PREFIX) :]
        allowed = False
        for candidate in ROUTES:
            match = candidate.pattern.fullmatch(sub)
            if match is None:
                continue
            allowed = True
            if candidate.method != request.method:
                continue
            if candidate.auth:
                token, from_query = token_of(request)
                if from_query:
                    raise AppError("api.context.token_provided.app_error", 401)
                ctx.actor = emulator.state.authenticate(token)
            response = candidate.handler(ctx, match.groupdict())
            break
        else:
            if allowed:
                return Response(status=405, headers=_common_headers(request, request_id))
            raise AppError("api.context.404.app_error", 404)
    except AppError as error:
        logger.debug("%s %s -> %d %s", request.method, request.path, error.status, error.id)
        return error_response(error, request, request_id)
    response.headers.extend(_common_headers(request, request_id))
    return response
