"""The REST routes of the stand-in: request in, ``Response`` out.

Each handler reads a parsed ``Request`` and acts on the ``OpenCodeStandIn``; ``app.py`` does the
ASGI plumbing, auth, fault points and the two SSE routes, ``rest.py`` the request and response
types and the error bodies.  Status codes follow what 1.18.33 answered (reference §2): 404 for
unknown ids, 500 ``UnknownError`` for a ``prompt_async`` on an unknown session, ``true`` for
abort and delete.
"""

from __future__ import annotations

import os.path
import re
from typing import TYPE_CHECKING, Final

from mmthreads.harness.opencode.bodies import (
    LegacyPermissionBody,
    PermissionReplyBody,
    PromptBody,
    QuestionReplyBody,
    SessionCreateBody,
    SessionPatchBody,
)
from mmthreads.harness.opencode.catalog import provider_list
from mmthreads.harness.opencode.rest import (
    BadBody,
    Request,
    Response,
    WaitForTurn,
    bad_request,
    decode_body,
    json_response,
    not_found,
    request_missing,
    session_missing,
    unexpected_error,
)
from mmthreads.harness.opencode.standin import UnknownModel
from mmthreads.harness.opencode.state import SessionNotFound

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    from mmthreads.harness.opencode.agent import TurnJob
    from mmthreads.harness.opencode.standin import OpenCodeStandIn

    Handler: TypeAlias = Callable[[OpenCodeStandIn, Request], Response | WaitForTurn]

__all__ = [
    "ROUTES",
    "Request",
    "Response",
    "WaitForTurn",
    "dispatch",
    "json_response",
    "match_route",
]

# -- server, projects, providers ---------------------------------------------------------------


def health(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /global/health``."""
    return json_response({"healthy": True, "version": standin.state.version})


def path_info(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /path``: how the directory was resolved."""
    home = os.path.expanduser("~")
    return json_response(
        {
            "home": home,
            "state": os.path.join(home, ".local/state/opencode"),
            "config": os.path.join(home, ".config/opencode"),
            "worktree": request.directory,
            "directory": request.directory,
        }
    )


def projects(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /project``."""
    standin.state.instance(request.directory)
    return json_response([i.project for i in standin.state.instances.values()])


def current_project(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /project/current``."""
    return json_response(standin.state.instance(request.directory).project)


def providers(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /provider``: ``{all, default, connected}``."""
    return json_response(provider_list())


# -- sessions ----------------------------------------------------------------------------------


def list_sessions(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /session``: the instance's sessions, newest update first."""
    q = request.query
    try:
        start = float(q["start"]) if "start" in q else None
        limit = int(float(q["limit"])) if "limit" in q else None
    except ValueError:
        return bad_request(standin, "start and limit must be numbers")
    found = standin.state.list_sessions(
        request.directory,
        roots=q.get("roots") == "true",
        search=q.get("search"),
        start=start,
        limit=limit,
    )
    return json_response(found)


def create_session(standin: OpenCodeStandIn, request: Request) -> Response:
    """``POST /session``."""
    body = decode_body(request.body, SessionCreateBody, empty_ok=True)
    session = standin.create_session(
        request.directory, title=body.title, parent_id=body.parent_id, permission=body.permission
    )
    if body.metadata is not None:
        session.metadata = body.metadata
    return json_response(session)


def get_session(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /session/{id}`` (any instance's session)."""
    return json_response(standin.state.session(request.params["sid"]))


def patch_session(standin: OpenCodeStandIn, request: Request) -> Response:
    """``PATCH /session/{id}``: title, metadata, permission, ``time.archived``."""
    body = decode_body(request.body, SessionPatchBody, empty_ok=True)
    session = standin.state.update_session(
        request.params["sid"],
        title=body.title,
        archived=body.time.archived if body.time else None,
        metadata=body.metadata,
        permission=body.permission,
    )
    return json_response(session)


def delete_session(standin: OpenCodeStandIn, request: Request) -> Response:
    """``DELETE /session/{id}``: ``true``."""
    standin.delete_session(request.params["sid"])
    return json_response(True)


def children(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /session/{id}/children``."""
    standin.state.session(request.params["sid"])
    return json_response(standin.state.children(request.params["sid"]))


def todos(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /session/{id}/todo``."""
    session = standin.state.session(request.params["sid"])
    return json_response(standin.state.todos.get(session.id, []))


def statuses(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /session/status``: non-idle sessions only."""
    return json_response(standin.state.statuses(request.directory))


def abort(standin: OpenCodeStandIn, request: Request) -> Response:
    """``POST /session/{id}/abort``: ``true``, even when idle."""
    return json_response(standin.abort(request.params["sid"]))


# -- messages and prompts ----------------------------------------------------------------------


def messages(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /session/{id}/message`` with ``limit`` and ``before``; ``Link``/``X-Next-Cursor``."""
    sid = request.params["sid"]
    try:
        limit = int(request.query["limit"]) if "limit" in request.query else None
        if limit is not None and limit < 0:
            raise ValueError(limit)
        page, cursor = standin.state.list_messages(
            sid, limit=limit, before=request.query.get("before")
        )
    except ValueError as exc:
        return bad_request(standin, str(exc))
    headers = [("access-control-expose-headers", "Link, X-Next-Cursor")]
    if cursor is not None:
        link = f'<{request.path}?limit={limit}&before={cursor}>; rel="next"'
        headers += [("link", link), ("x-next-cursor", cursor)]
    return json_response([r.to_wire() for r in page], headers=headers)


def message(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /session/{id}/message/{messageID}``."""
    standin.state.session(request.params["sid"])
    record = standin.state.record(request.params["sid"], request.params["mid"])
    if record is None:
        return not_found(f"Message not found: {request.params['mid']}")
    return json_response(record.to_wire())


def _submit(standin: OpenCodeStandIn, request: Request) -> TurnJob | None:
    body = decode_body(request.body, PromptBody)
    model = (body.model.provider_id, body.model.model_id) if body.model else None
    return standin.prompt_nowait(
        request.params["sid"],
        body.parts,
        model=model,
        agent=body.agent,
        no_reply=bool(body.no_reply),
        message_id=body.message_id,
    )


def prompt_async(standin: OpenCodeStandIn, request: Request) -> Response:
    """``POST /session/{id}/prompt_async``: 204 at once; unknown session: 500."""
    try:
        _submit(standin, request)
    except SessionNotFound:
        return unexpected_error(standin)
    except UnknownModel:
        pass  # reported on the event stream, as by the real server
    return Response(status=204, content_type=None)


def prompt_sync(standin: OpenCodeStandIn, request: Request) -> Response | WaitForTurn:
    """``POST /session/{id}/message``: waits for the turn; unknown model: 500."""
    try:
        job = _submit(standin, request)
    except UnknownModel:
        return unexpected_error(standin)
    if job is None:
        record = standin.state.messages[request.params["sid"]][-1]
        return json_response(record.to_wire())
    return WaitForTurn(job)


# -- permissions and questions -----------------------------------------------------------------


def list_permissions(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /permission``."""
    return json_response(standin.pending.permissions_in(request.directory))


def reply_permission(standin: OpenCodeStandIn, request: Request) -> Response:
    """``POST /permission/{id}/reply`` with ``{reply, message?}``."""
    body = decode_body(request.body, PermissionReplyBody)
    if not standin.reply_permission(request.params["rid"], body.reply, body.message):
        return request_missing("Permission", request.params["rid"])
    return json_response(True)


def legacy_reply_permission(standin: OpenCodeStandIn, request: Request) -> Response:
    """``POST /session/{id}/permissions/{permissionID}`` with ``{response}``."""
    standin.state.session(request.params["sid"])
    body = decode_body(request.body, LegacyPermissionBody)
    if not standin.reply_permission(request.params["rid"], body.response):
        return request_missing("Permission", request.params["rid"])
    return json_response(True)


def list_questions(standin: OpenCodeStandIn, request: Request) -> Response:
    """``GET /question``."""
    return json_response(standin.pending.questions_in(request.directory))


def reply_question(standin: OpenCodeStandIn, request: Request) -> Response:
    """``POST /question/{id}/reply`` with ``{answers}``."""
    body = decode_body(request.body, QuestionReplyBody)
    if not standin.reply_question(request.params["rid"], body.answers):
        return request_missing("Question", request.params["rid"])
    return json_response(True)


def reject_question(standin: OpenCodeStandIn, request: Request) -> Response:
    """``POST /question/{id}/reject``."""
    if not standin.reject_question(request.params["rid"]):
        return request_missing("Question", request.params["rid"])
    return json_response(True)


# -- the table ---------------------------------------------------------------------------------

_ID: Final = r"(?P<{}>[^/]+)"
_SID: Final = _ID.format("sid")


def _route(
    method: str, pattern: str, handler: Handler, *, current_only: bool = False
) -> tuple[str, re.Pattern[str], Handler, bool]:
    return method, re.compile(f"^{pattern}$"), handler, current_only


#: ``(method, path regex, handler, only in the current dialect)``.
ROUTES: Final = [
    _route("GET", "/global/health", health),
    _route("GET", "/path", path_info),
    _route("GET", "/project", projects),
    _route("GET", "/project/current", current_project),
    _route("GET", "/provider", providers),
    _route("GET", "/session", list_sessions),
    _route("POST", "/session", create_session),
    _route("GET", "/session/status", statuses),
    _route("GET", f"/session/{_SID}", get_session),
    _route("PATCH", f"/session/{_SID}", patch_session),
    _route("DELETE", f"/session/{_SID}", delete_session),
    _route("GET", f"/session/{_SID}/children", children),
    _route("GET", f"/session/{_SID}/todo", todos),
    _route("POST", f"/session/{_SID}/abort", abort),
    _route("GET", f"/session/{_SID}/message", messages),
    _route("POST", f"/session/{_SID}/message", prompt_sync),
    _route("GET", f"/session/{_SID}/message/{_ID.format('mid')}", message),
    _route("POST", f"/session/{_SID}/prompt_async", prompt_async),
    _route("POST", f"/session/{_SID}/permissions/{_ID.format('rid')}", legacy_reply_permission),
    _route("GET", "/permission", list_permissions, current_only=True),
    _route("POST", f"/permission/{_ID.format('rid')}/reply", reply_permission, current_only=True),
    _route("GET", "/question", list_questions, current_only=True),
    _route("POST", f"/question/{_ID.format('rid')}/reply", reply_question, current_only=True),
    _route("POST", f"/question/{_ID.format('rid')}/reject", reject_question, current_only=True),
]


def match_route(
    standin: OpenCodeStandIn, method: str, path: str
) -> tuple[Handler, dict[str, str]] | None:
    """The handler and path parameters for a request, or ``None`` (an unknown route)."""
    for route_method, pattern, handler, current_only in ROUTES:
        if current_only and not standin.state.current:
            continue
        found = pattern.match(path)
        if found and route_method == method:
            return handler, found.groupdict()
    return None


def dispatch(
    standin: OpenCodeStandIn, handler: Handler, request: Request
) -> Response | WaitForTurn:
    """Run a handler, mapping the stand-in's exceptions to the server's error answers."""
    try:
        result: Response | WaitForTurn = handler(standin, request)
    except SessionNotFound as missing:
        return session_missing(str(missing))
    except BadBody as bad:
        return bad_request(standin, str(bad))
    return result
