"""The OpenCode REST client over ``httpx.MockTransport``: auth, directories, errors, retries."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx
import msgspec
import pytest
import trio

from mmthreads.adapters.opencode import HEALTH_TIMEOUT, OpenCodeClient, open_opencode_client
from mmthreads.core import agent_events as ae
from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import (
    AgentAuthError,
    AgentBadResponse,
    AgentCallFailed,
    AgentNotFound,
    AgentTimeout,
    AgentUnavailable,
    ConfigError,
)
from mmthreads.wire.opencode_rest import FilePartInput, TextPartInput

URL = "http://127.0.0.1:4096"
D = "/home/dev/proj-a"
PASSWORD = "s3cret-pw"
POLICY = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=10.0, max_attempts=3)
SESSION = {
    "id": "ses_1",
    "slug": "s",
    "version": "1.18.33",
    "projectID": "p",
    "directory": D,
    "title": "t",
    "time": {"created": 1, "updated": 2},
}
HTML = httpx.Response(200, headers={"content-type": "text/html"}, text="<html>web ui</html>")


def js(body: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class Server:
    """A scripted handler: ``routes`` maps ``"METHOD /path"`` to a response or a callable."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[tuple[float, httpx.Request]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((trio.current_time(), request))
        answer = self.routes.get(f"{request.method} {request.url.path}", HTML)
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer

    def times(self) -> list[float]:
        return [t for t, _ in self.requests]

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for _, r in self.requests]


def client(server: Server, **kwargs: Any) -> OpenCodeClient:
    kwargs.setdefault("policy", POLICY)
    return OpenCodeClient(URL, transport=httpx.MockTransport(server), **kwargs)


# --- auth and secrets --------------------------------------------------------------------------


async def test_basic_auth_is_sent_and_the_password_is_never_shown(caplog, autojump_clock) -> None:
    caplog.set_level(logging.DEBUG)
    server = Server(
        {
            "GET /global/health": js({"healthy": True, "version": "1.18.33"}),
            "GET /session/ses_x": js({"name": "NotFoundError", "data": {"message": "nope"}}, 404),
            "GET /session": [httpx.Response(503), httpx.Response(503), js([SESSION])],
        }
    )
    async with client(server, password=PASSWORD) as oc:
        assert await oc.health() == (True, "1.18.33")
        with pytest.raises(AgentNotFound) as missing:
            await oc.get_session("ses_x", D)
        assert [s.session_id for s in await oc.list_sessions(D)] == ["ses_1"]
        shown = [repr(oc), str(missing.value), repr(missing.value), caplog.text]
    token = base64.b64encode(f"opencode:{PASSWORD}".encode()).decode()
    assert {r.headers["authorization"] for _, r in server.requests} == {f"Basic {token}"}
    for text in shown:
        assert PASSWORD not in text
        assert token not in text
    assert "auth=basic" in shown[0]


async def test_a_refused_password_is_an_auth_error_without_the_password() -> None:
    server = Server({"GET /global/health": httpx.Response(401, text=f"bad {PASSWORD}")})
    async with client(server, password=PASSWORD) as oc:
        with pytest.raises(AgentAuthError) as refused:
            await oc.health()
    assert refused.value.status == 401
    assert not refused.value.retryable
    assert PASSWORD not in str(refused.value)
    assert "wrong password" in str(refused.value)
    assert len(server.requests) == 1


async def test_credentials_in_the_url_move_to_the_header() -> None:
    server = Server({"GET /global/health": js({"healthy": True, "version": "1"})})
    oc = OpenCodeClient(
        f"http://bob:{PASSWORD}@127.0.0.1:4096/", transport=httpx.MockTransport(server)
    )
    async with oc:
        await oc.health()
    assert oc.server == URL
    assert PASSWORD not in repr(oc)
    [(_, request)] = server.requests
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    )
    assert PASSWORD not in str(request.url)


async def test_no_password_sends_no_auth() -> None:
    server = Server({"GET /global/health": js({"healthy": True, "version": "1"})})
    async with client(server) as oc:
        await oc.health()
    assert "authorization" not in server.requests[0][1].headers


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:4096", "http://"])
def test_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        OpenCodeClient(url)


# --- directories, bodies, shapes ---------------------------------------------------------------


async def test_every_instance_call_names_its_directory() -> None:
    server = Server(
        {
            "GET /global/health": js({"healthy": True, "version": "1"}),
            "GET /session": js([SESSION]),
            "POST /session": js(SESSION),
            "GET /session/ses_1": js(SESSION),
            "GET /session/status": js({"ses_1": {"type": "busy"}}),
            "POST /session/ses_1/abort": js(True),
            "GET /permission": js([]),
            "GET /question": js([]),
            "GET /session/ses_1/todo": js(
                [{"content": "a", "status": "pending", "priority": "low"}]
            ),
            "DELETE /session/ses_1": js(True),
            "POST /question/que_1/reply": js(True),
            "POST /question/que_1/reject": js(True),
        }
    )
    async with client(server) as oc:
        await oc.health()
        await oc.list_sessions(D)
        created = await oc.create_session(D, title="hello")
        await oc.get_session("ses_1", D)
        statuses = await oc.session_status(D)
        assert await oc.abort("ses_1", D) is True
        assert await oc.list_permissions(D) == []
        assert await oc.list_questions(D) == []
        todos = await oc.todos("ses_1", D)
        await oc.reply_question("que_1", D, [["Red"]])
        await oc.reject_question("que_1", D)
        await oc.delete_session("ses_1", D)
    assert created == ae.SessionInfo(
        session_id="ses_1", directory=D, title="t", created_ms=1, updated_ms=2
    )
    assert statuses == {
        "ses_1": ae.SessionStatus(server=URL, directory=D, session_id="ses_1", status="busy")
    }
    assert todos == (ae.Todo(content="a", status="pending", priority="low"),)
    health, *instance = [r for _, r in server.requests]
    assert "directory" not in health.url.params
    assert all(r.url.params["directory"] == D for r in instance)
    bodies = {f"{r.method} {r.url.path}": r.content for r in instance if r.content}
    assert json.loads(bodies["POST /session"]) == {"title": "hello"}
    assert json.loads(bodies["POST /question/que_1/reply"]) == {"answers": [["Red"]]}


async def test_prompt_async_sends_parts_model_and_agent_and_expects_204() -> None:
    server = Server({"POST /session/ses_1/prompt_async": httpx.Response(204)})
    async with client(server) as oc:
        await oc.prompt_async(
            "ses_1",
            D,
            [
                TextPartInput(text="hi"),
                FilePartInput(mime="text/plain", url="data:text/plain;base64,aGk=", filename="a"),
            ],
            ("stub", "stub-model"),
            agent="build",
        )
        await oc.prompt_async("ses_1", D, [TextPartInput(text="again")], None)
    first, second = (json.loads(r.content) for _, r in server.requests)
    assert first == {
        "parts": [
            {"type": "text", "text": "hi"},
            {
                "type": "file",
                "mime": "text/plain",
                "url": "data:text/plain;base64,aGk=",
                "filename": "a",
            },
        ],
        "model": {"providerID": "stub", "modelID": "stub-model"},
        "agent": "build",
    }
    assert second == {"parts": [{"type": "text", "text": "again"}]}


async def test_history_is_normalised_messages_with_their_parts() -> None:
    user = {"id": "msg_u", "sessionID": "ses_1", "role": "user", "time": {"created": 1}}
    assistant = {
        "id": "msg_a",
        "sessionID": "ses_1",
        "role": "assistant",
        "time": {"created": 2},
        "modelID": "stub-model",
        "providerID": "stub",
        "error": {"name": "MessageAbortedError", "data": {"message": "Aborted"}},
    }
    text = {
        "id": "prt_1",
        "sessionID": "ses_1",
        "messageID": "msg_a",
        "type": "text",
        "text": "Hel",
    }
    server = Server(
        {
            "GET /session/ses_1/message": js(
                [{"info": user, "parts": []}, {"info": assistant, "parts": [text]}]
            )
        }
    )
    async with client(server) as oc:
        history = await oc.messages("ses_1", D, limit=2)
    assert server.requests[0][1].url.params["limit"] == "2"
    assert [m.info.role for m in history] == ["user", "assistant"]
    assert history[1].info.error_name == "MessageAbortedError"
    assert history[1].parts == (ae.TextPart(part_id="prt_1", message_id="msg_a", text="Hel"),)


async def test_providers_give_connected_models_and_defaults() -> None:
    caps = {
        "attachment": True,
        "toolcall": True,
        "input": {"text": True, "image": True, "pdf": True},
    }
    body = {
        "all": [{"id": "stub", "name": "Stub", "models": {"v": {"id": "v", "capabilities": caps}}}],
        "default": {"stub": "v"},
        "connected": ["stub"],
    }
    async with client(Server({"GET /provider": js(body)})) as oc:
        catalog = await oc.providers(D)
    assert catalog.default_model() == ("stub", "v")
    model = catalog.find("stub", "v")
    assert model is not None
    assert model.image_input
    assert model.pdf_input


# --- error mapping -----------------------------------------------------------------------------


async def test_html_for_an_unknown_route_is_a_bad_response() -> None:
    async with client(Server({})) as oc:
        with pytest.raises(AgentBadResponse) as html:
            await oc.list_permissions(D)
        with pytest.raises(AgentBadResponse):
            await oc.prompt_async("ses_1", D, [TextPartInput(text="x")], None)
    assert html.value.status == 200
    assert html.value.name == "NotJSON"
    assert "text/html" in html.value.message


async def test_json_of_the_wrong_shape_is_a_bad_response() -> None:
    async with client(Server({"GET /session": js({"not": "a list"})})) as oc:
        with pytest.raises(AgentBadResponse, match="InvalidBody"):
            await oc.list_sessions(D)


@pytest.mark.parametrize(
    ("answer", "error", "name", "message"),
    [
        (
            js({"name": "NotFoundError", "data": {"message": "Session not found"}}, 404),
            AgentNotFound,
            "NotFoundError",
            "Session not found",
        ),
        (
            js({"_tag": "PermissionNotFoundError", "requestID": "per_x", "message": "gone"}, 404),
            AgentNotFound,
            "PermissionNotFoundError",
            "gone",
        ),
        (
            js({"_tag": "InvalidRequestError", "message": "bad body"}, 400),
            AgentCallFailed,
            "InvalidRequestError",
            "bad body",
        ),
    ],
)
async def test_error_bodies_of_both_styles(
    answer: httpx.Response, error: type[AgentCallFailed], name: str, message: str
) -> None:
    async with client(Server({"POST /permission/per_x/reply": answer})) as oc:
        with pytest.raises(error) as failed:
            await oc._http.call_json(  # the legacy fallback would hide the first answer
                "POST", "/permission/per_x/reply", msgspec.json.Decoder(bool)
            )
    assert type(failed.value) is error
    assert (failed.value.name, failed.value.message) == (name, message)
    assert not failed.value.retryable


async def test_an_unknown_session_500_on_prompt_is_not_retried() -> None:
    answer = js({"name": "UnknownError", "data": {"message": "Unexpected server error"}}, 500)
    server = Server({"POST /session/ses_x/prompt_async": answer})
    async with client(server) as oc:
        with pytest.raises(AgentCallFailed) as failed:
            await oc.prompt_async("ses_x", D, [TextPartInput(text="x")], None)
    assert (failed.value.status, failed.value.name, failed.value.retryable) == (
        500,
        "UnknownError",
        False,
    )
    assert len(server.requests) == 1


# A 1.0-era server proxies a route it lacks to the web app; offline that fails like this.
PROXY_FAILED = js(
    {
        "name": "UnknownError",
        "data": {"message": "Error: Unable to connect. Is the computer able to access the url?"},
    },
    500,
)


@pytest.mark.parametrize(
    "message",
    [
        "Error: Unable to connect. Is the computer able to access the url?",
        "Error: Was there a typo in the url or port?",
    ],
)
async def test_an_offline_proxy_failure_is_a_missing_route_and_not_retried(
    autojump_clock, message: str
) -> None:
    failed = js({"name": "UnknownError", "data": {"message": message}}, 500)
    server = Server({"GET /global/health": failed, "GET /permission": failed})
    async with client(server) as oc:
        with pytest.raises(AgentNotFound) as health:
            await oc.health()
        with pytest.raises(AgentNotFound):
            await oc.list_permissions(D)
    assert server.paths() == ["GET /global/health", "GET /permission"]
    assert trio.current_time() == 0.0
    assert (health.value.status, health.value.name) == (500, "UnknownError")
    assert "no such route" in health.value.message


async def test_another_unknown_error_on_a_read_is_still_retried(autojump_clock) -> None:
    failed = js({"name": "UnknownError", "data": {"message": "Unexpected server error"}}, 500)
    server = Server({"GET /permission": [failed, js([])]})
    async with client(server) as oc:
        assert await oc.list_permissions(D) == []
    assert server.times() == [0.0, 1.0]


# --- retries (virtual time) --------------------------------------------------------------------


async def test_5xx_reads_are_retried_on_the_policys_schedule(autojump_clock) -> None:
    server = Server({"GET /session/status": [httpx.Response(502), httpx.Response(503), js({})]})
    async with client(server) as oc:
        assert await oc.session_status(D) == {}
    assert server.times() == [0.0, 1.0, 3.0]


async def test_5xx_until_the_bound_then_unavailable(autojump_clock) -> None:
    server = Server({"GET /session": httpx.Response(500)})
    async with client(server) as oc:
        with pytest.raises(AgentUnavailable) as down:
            await oc.list_sessions(D)
    assert server.times() == [0.0, 1.0, 3.0, 7.0]
    assert trio.current_time() == 7.0
    assert (down.value.status, down.value.retryable) == (500, True)


async def test_retry_after_is_honoured(autojump_clock) -> None:
    server = Server({"GET /session": [httpx.Response(429, headers={"retry-after": "2.5"}), js([])]})
    async with client(server) as oc:
        assert await oc.list_sessions(D) == []
    assert server.times() == [0.0, 2.5]


async def test_a_prompt_is_retried_only_when_the_server_cannot_have_acted(autojump_clock) -> None:
    path = "POST /session/ses_1/prompt_async"
    refused = httpx.ConnectError("Connection refused")
    server = Server({path: [refused, httpx.Response(503), httpx.Response(204)]})
    async with client(server) as oc:
        await oc.prompt_async("ses_1", D, [TextPartInput(text="x")], None)
        assert server.times() == [0.0, 1.0, 3.0]
        server.routes[path] = [httpx.ReadError("connection reset"), httpx.Response(204)]
        with pytest.raises(AgentUnavailable) as unknown:
            await oc.prompt_async("ses_1", D, [TextPartInput(text="x")], None)
    assert len(server.requests) == 4
    assert not unknown.value.retryable
    assert unknown.value.name == "ReadError"


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), AgentUnavailable),
        (httpx.ConnectTimeout("slow"), AgentTimeout),
        (httpx.ReadTimeout("slow"), AgentTimeout),
        (httpx.RemoteProtocolError("garbage"), AgentUnavailable),
    ],
)
async def test_no_httpx_exception_escapes(
    autojump_clock, exc: Exception, error: type[AgentCallFailed]
) -> None:
    server = Server({"GET /global/health": exc})
    async with client(server) as oc:
        with pytest.raises(error) as failed:
            await oc.health()
    assert failed.value.status == 0
    assert failed.value.retryable
    assert len(server.requests) == 4
    assert not isinstance(failed.value.__cause__, httpx.HTTPError)


# --- permissions: the legacy fallback ----------------------------------------------------------


@pytest.mark.parametrize(
    "new_route",
    [HTML, js({"name": "NotFoundError", "data": {"message": "no route"}}, 404), PROXY_FAILED],
    ids=["html", "404", "offline-proxy"],
)
async def test_permission_replies_fall_back_to_the_legacy_route(new_route: httpx.Response) -> None:
    server = Server(
        {
            "POST /permission/per_1/reply": new_route,
            "POST /session/ses_1/permissions/per_1": js(True),
        }
    )
    async with client(server) as oc:
        await oc.reply_permission("per_1", "ses_1", D, "always", message="ok")
    assert server.paths() == [
        "POST /permission/per_1/reply",
        "POST /session/ses_1/permissions/per_1",
    ]
    new, legacy = (r for _, r in server.requests)
    assert json.loads(new.content) == {"reply": "always", "message": "ok"}
    assert json.loads(legacy.content) == {"response": "always"}
    assert legacy.url.params["directory"] == D


async def test_a_current_server_answers_on_the_new_route() -> None:
    server = Server({"POST /permission/per_1/reply": js(True)})
    async with client(server) as oc:
        await oc.reply_permission("per_1", "ses_1", D, "once")
    assert server.paths() == ["POST /permission/per_1/reply"]
    assert json.loads(server.requests[0][1].content) == {"reply": "once"}


async def test_an_unknown_request_on_both_routes_is_not_found() -> None:
    gone = js({"name": "NotFoundError", "data": {"message": "gone"}}, 404)
    server = Server(
        {"POST /permission/per_1/reply": gone, "POST /session/ses_1/permissions/per_1": gone}
    )
    async with client(server) as oc:
        with pytest.raises(AgentNotFound):
            await oc.reply_permission("per_1", "ses_1", D, "reject")


async def test_open_opencode_client_closes_on_the_way_out() -> None:
    transport = httpx.MockTransport(Server({"GET /global/health": js({"healthy": True})}))
    async with open_opencode_client(URL, transport=transport) as oc:
        assert await oc.health() == (True, "")
    assert oc._http._client.is_closed


async def test_the_health_probe_waits_less_than_other_calls(autojump_clock) -> None:
    server = Server(
        {
            "GET /global/health": js({"healthy": True, "version": "1.18.33"}),
            "GET /session": js([SESSION]),
        }
    )
    async with client(server, read_timeout=30.0) as oc:
        await oc.health()
        await oc.list_sessions(D)
    reads = {r.url.path: r.extensions["timeout"]["read"] for _, r in server.requests}
    assert reads == {"/global/health": HEALTH_TIMEOUT, "/session": 30.0}
