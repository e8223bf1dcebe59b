"""The REST plumbing every route shares: the parsed request, the response, and OpenCode's errors.

The error bodies are those 1.18.33 answered (reference §2): ``NotFoundError`` in the old
``{name, data}`` style for sessions and messages, the newer ``{_tag, …}`` style for permission
and question ids, 500 ``UnknownError`` with a ``ref`` for what the server did not expect, and
400 in the style of the dialect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, TypeVar

import msgspec

if TYPE_CHECKING:
    from mmthreads.harness.opencode.agent import TurnJob
    from mmthreads.harness.opencode.standin import OpenCodeStandIn

__all__ = [
    "BadBody",
    "Request",
    "Response",
    "WaitForTurn",
    "bad_request",
    "decode_body",
    "json_response",
    "not_found",
    "request_missing",
    "session_missing",
    "unexpected_error",
]

_encoder: Final = msgspec.json.Encoder()

T = TypeVar("T")


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    directory: str
    params: dict[str, str] = msgspec.field(default_factory=dict)


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """A complete HTTP response."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)


class WaitForTurn:
    """The synchronous prompt route's answer: wait for ``job``, then send its last message."""

    def __init__(self, job: TurnJob) -> None:
        self.job = job


def json_response(
    value: object, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    """Encode ``value`` (Structs, dicts, lists …) as a JSON response."""
    return Response(status=status, body=_encoder.encode(value), headers=headers or [])


def not_found(message: str) -> Response:
    """404 ``NotFoundError`` (sessions, messages)."""
    return json_response({"name": "NotFoundError", "data": {"message": message}}, 404)


def session_missing(session_id: str) -> Response:
    """404 for an unknown session id."""
    return not_found(f"Session not found: {session_id}")


def request_missing(kind: Literal["Permission", "Question"], request_id: str) -> Response:
    """404 ``PermissionNotFoundError`` or ``QuestionNotFoundError`` (the newer style)."""
    body = {
        "_tag": f"{kind}NotFoundError",
        "requestID": request_id,
        "message": f"{kind} request not found: {request_id}",
    }
    return json_response(body, 404)


def unexpected_error(standin: OpenCodeStandIn) -> Response:
    """500 ``UnknownError`` with a fresh ``ref``, as the server answers what it did not expect."""
    ref = standin.state.ids.ascending("err")
    data = {"message": "Unexpected server error. Check server logs for details.", "ref": ref}
    return json_response({"name": "UnknownError", "data": data}, 500)


def bad_request(standin: OpenCodeStandIn, message: str) -> Response:
    """400, in the style of the stand-in's dialect."""
    if standin.state.current:
        return json_response({"_tag": "InvalidRequestError", "message": message}, 400)
    return json_response({"name": "BadRequest", "data": {"message": message}}, 400)


class BadBody(Exception):
    """A request body that does not decode; ``dispatch`` answers it with 400."""


def decode_body(body: bytes, type_: type[T], *, empty_ok: bool = False) -> T:
    """Decode a JSON request body as ``type_``; an empty body is ``{}`` if ``empty_ok``.

    Raises:
        BadBody: Malformed JSON, or JSON that does not fit ``type_``.
    """
    try:
        if not body.strip() and empty_ok:
            return msgspec.json.decode(b"{}", type=type_)
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise BadBody(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadBody(f"Malformed JSON: {exc}") from None
