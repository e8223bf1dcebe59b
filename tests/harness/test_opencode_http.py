"""The stand-in over loopback HTTP (real clock, short chunk delays), driven with httpx."""

from __future__ import annotations

import base64
import json
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio

from mmthreads.harness.faults import Delay, Drop, FaultPlan, Status
from mmthreads.harness.opencode import OpenCodeStandInHandle, open_opencode_standin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

PROJ_A = "/home/dev/proj-a"
PROJ_B = "/home/dev/proj-b"
TIMEOUT = 10


class Sse:
    """Reads one SSE response in the background; frames arrive on ``frames``."""

    def __init__(self) -> None:
        self.send, self.frames = trio.open_memory_channel[dict[str, Any]](1000)
        self.raw: list[bytes] = []
        self.status: int | None = None
        self.ended = trio.Event()

    async def run(self, client: httpx.AsyncClient, path: str, **kwargs: Any) -> None:
        try:
            async with client.stream("GET", path, **kwargs) as response:
                self.status = response.status_code
                buffer = b""
                async for chunk in response.aiter_bytes():
                    buffer += chunk
                    while b"\n\n" in buffer:
                        frame, buffer = buffer.split(b"\n\n", 1)
                        self.raw.append(frame)
                        await self.send.send(json.loads(frame.removeprefix(b"data: ")))
        except httpx.TransportError:
            pass
        finally:
            self.ended.set()

    async def next(self, where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            frame = await self.frames.receive()
            if where(frame):
                return frame


def of_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("payload", frame)["type"] == kind


async def subscribe(
    nursery: trio.Nursery, client: httpx.AsyncClient, path: str = "/event", **kwargs: Any
) -> Sse:
    sse = Sse()
    nursery.start_soon(partial(sse.run, client, path, **kwargs))
    await sse.next(of_type("server.connected"))
    return sse


@pytest.fixture
async def oc() -> AsyncIterator[OpenCodeStandInHandle]:
    async with open_opencode_standin(directory=PROJ_A, chunk_delay=0.001) as handle:
        yield handle


@pytest.fixture
async def client(oc: OpenCodeStandInHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=oc.url, timeout=TIMEOUT) as http:
        yield http


# -- basics ------------------------------------------------------------------------------------


async def test_health_path_projects_and_providers(oc, client):
    with trio.fail_after(TIMEOUT):
        health = await client.get("/global/health")
        assert health.headers["content-type"] == "application/json"
        assert health.json() == {"healthy": True, "version": "1.18.33"}
        path = (await client.get("/path", params={"directory": PROJ_B})).json()
        assert (path["directory"], path["worktree"]) == (PROJ_B, PROJ_B)
        header = {"x-opencode-directory": "/home/dev/with%20space"}
        current = (await client.get("/project/current", headers=header)).json()
        assert current["worktree"] == "/home/dev/with space"
        assert {p["worktree"] for p in (await client.get("/project")).json()} >= {PROJ_A, PROJ_B}
        providers = (await client.get("/provider")).json()
        assert providers["default"] == {"stub": "stub-model"}
        assert providers["connected"] == ["stub"]
        vision = providers["all"][0]["models"]["stub-vision"]["capabilities"]["input"]
        assert (vision["image"], vision["pdf"]) == (True, True)


async def test_unknown_routes_answer_html(client):
    with trio.fail_after(TIMEOUT):
        for method, path in [("GET", "/nope"), ("POST", "/permission//reply")]:
            response = await client.request(method, path, json={})
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")


async def test_basic_auth():
    with trio.fail_after(TIMEOUT):
        async with (
            open_opencode_standin(directory=PROJ_A, password="s3cret") as oc,
            httpx.AsyncClient(base_url=oc.url) as client,
        ):
            denied = await client.get("/global/health")
            assert denied.status_code == 401
            assert denied.headers["www-authenticate"] == 'Basic realm="Secure Area"'
            assert (await client.get("/event", auth=("other", "s3cret"))).status_code == 401
            ok = await client.get("/global/health", auth=("opencode", "s3cret"))
            assert ok.status_code == 200
            token = base64.b64encode(b"opencode:s3cret").decode()
            assert (await client.get("/session", params={"auth_token": token})).status_code == 200


# -- sessions ----------------------------------------------------------------------------------


async def test_session_crud_and_events(oc, client, nursery):
    with trio.fail_after(TIMEOUT):
        sse = await subscribe(nursery, client)
        created = (await client.post("/session", json={"title": "t"})).json()
        sid = created["id"]
        assert (await sse.next(of_type("session.created")))["properties"]["info"] == created
        child = (await client.post("/session", json={"parentID": sid})).json()
        assert child["title"].startswith("Child session - ")
        assert [s["id"] for s in (await client.get(f"/session/{sid}/children")).json()] == [
            child["id"]
        ]
        assert (await client.get(f"/session/{sid}", params={"directory": PROJ_B})).json() == created
        listed = await client.get("/session", params={"roots": "true"})
        assert [s["id"] for s in listed.json()] == [sid]
        assert (await client.get("/session", params={"directory": PROJ_B})).json() == []
        renamed = (await client.patch(f"/session/{sid}", json={"title": "renamed"})).json()
        assert renamed["title"] == "renamed"
        archived = await client.patch(f"/session/{sid}", json={"time": {"archived": 123}})
        assert archived.json()["time"]["archived"] == 123
        update = await sse.next(lambda f: f["type"] == "session.updated")
        assert update["properties"]["info"]["title"] == "renamed"
        update = await sse.next(lambda f: f["type"] == "session.updated")
        assert update["properties"]["info"]["time"]["archived"] == 123
        assert (await client.delete(f"/session/{sid}")).json() is True
        deleted = [(await sse.next(of_type("session.deleted")))["properties"]["sessionID"]]
        deleted.append((await sse.next(of_type("session.deleted")))["properties"]["sessionID"])
        assert deleted == [child["id"], sid]
        missing = await client.get(f"/session/{sid}")
        assert missing.status_code == 404
        assert missing.json() == {
            "name": "NotFoundError",
            "data": {"message": f"Session not found: {sid}"},
        }


async def test_prompt_async_streams_the_turn_over_sse(oc, client, nursery):
    with trio.fail_after(TIMEOUT):
        sse = await subscribe(nursery, client)
        sid = (await client.post("/session", json={})).json()["id"]
        body = {"parts": [{"type": "text", "text": "USE_TOOLS please"}]}
        response = await client.post(f"/session/{sid}/prompt_async", json=body)
        assert response.status_code == 204
        asked = await sse.next(of_type("permission.asked"))
        assert (await client.get("/session/status")).json() == {sid: {"type": "busy"}}
        pending = (await client.get("/permission")).json()
        assert pending == [asked["properties"]]
        request_id = asked["properties"]["id"]
        reply = await client.post(f"/permission/{request_id}/reply", json={"reply": "once"})
        assert reply.json() is True
        await sse.next(of_type("session.idle"))
        assert (await client.get("/session/status")).json() == {}
        assert (await client.get(f"/session/{sid}/todo")).json()[1]["content"] == "run echo"
        for raw in sse.raw:
            assert raw.startswith(b"data: {")
            assert b"\n" not in raw
        again = await client.post(f"/permission/{request_id}/reply", json={"reply": "once"})
        assert again.status_code == 404
        assert again.json()["_tag"] == "PermissionNotFoundError"


async def test_legacy_permission_route(oc, client):
    with trio.fail_after(TIMEOUT):
        sid = (await client.post("/session", json={})).json()["id"]
        body = {"parts": [{"type": "text", "text": "RUN_BASH echo hi"}]}
        await client.post(f"/session/{sid}/prompt_async", json=body)
        request = await oc.standin.wait_permission_asked(sid)
        route = f"/session/{sid}/permissions/{request.id}"
        assert (await client.post(route, json={"response": "always"})).json() is True
        await oc.standin.wait_idle(sid)
        replied = await oc.standin.wait_event("permission.replied", session_id=sid)
        assert replied.properties["reply"] == "always"
        bad = await client.post(route, json={"response": "sometimes"})
        assert bad.status_code == 400


async def test_questions_over_http(oc, client):
    with trio.fail_after(TIMEOUT):
        sid = (await client.post("/session", json={})).json()["id"]
        body = {"parts": [{"type": "text", "text": "ASK_QUESTION"}]}
        for action in ("reply", "reject"):
            await client.post(f"/session/{sid}/prompt_async", json=body)
            question = await oc.standin.wait_question_asked(sid)
            listed = (await client.get("/question")).json()
            assert [q["id"] for q in listed] == [question.id]
            assert listed[0]["questions"][0]["header"] == "Colour"
            payload = {"answers": [["Red"]]} if action == "reply" else None
            answer = await client.post(f"/question/{question.id}/{action}", json=payload)
            assert answer.json() is True
            await oc.standin.wait_idle(sid)
        missing = await client.post("/question/que_nope/reject")
        assert (missing.status_code, missing.json()["_tag"]) == (404, "QuestionNotFoundError")


async def test_sync_prompt_abort_and_errors(oc, client, nursery):
    with trio.fail_after(TIMEOUT):
        sid = (await client.post("/session", json={})).json()["id"]
        ok = await client.post(
            f"/session/{sid}/message", json={"parts": [{"type": "text", "text": "hi"}]}
        )
        assert ok.json()["info"]["finish"] == "stop"
        assert [p["type"] for p in ok.json()["parts"]] == [
            "step-start", "reasoning", "text", "step-finish",
        ]  # fmt: skip
        failed = await client.post(
            f"/session/{sid}/message", json={"parts": [{"type": "text", "text": "FAIL_400"}]}
        )
        assert failed.status_code == 200
        assert failed.json()["info"]["error"]["name"] == "APIError"
        unknown = await client.post(
            f"/session/{sid}/message",
            json={
                "parts": [{"type": "text", "text": "x"}],
                "model": {"providerID": "nope", "modelID": "zzz"},
            },
        )
        assert (unknown.status_code, unknown.json()["name"]) == (500, "UnknownError")
        ghost = await client.post("/session/ses_ghost/prompt_async", json={"parts": []})
        assert (ghost.status_code, ghost.json()["name"]) == (500, "UnknownError")

        sse = await subscribe(nursery, client)
        # the bad model is sticky: a prompt without a model fails again (reference §2.3)
        await client.post(
            f"/session/{sid}/prompt_async", json={"parts": [{"type": "text", "text": "hi"}]}
        )
        sticky = await sse.next(of_type("session.error"))
        assert sticky["properties"]["error"]["data"]["message"] == "Model not found: nope/zzz"
        stub = {"providerID": "stub", "modelID": "stub-model"}
        slow = {"parts": [{"type": "text", "text": "SLOW 200"}], "model": stub}
        await client.post(f"/session/{sid}/prompt_async", json=slow)
        await sse.next(of_type("message.part.delta"))
        assert (await client.post(f"/session/{sid}/abort")).json() is True
        error = await sse.next(of_type("session.error"))
        assert error["properties"]["error"] == {
            "name": "MessageAbortedError",
            "data": {"message": "Aborted"},
        }
        await sse.next(of_type("session.idle"))
        assert (await client.post(f"/session/{sid}/abort")).json() is True  # idle: still true
        page = await client.get(f"/session/{sid}/message", params={"limit": 2})
        assert "x-next-cursor" in page.headers
        assert page.headers["link"].endswith('>; rel="next"')
        assert page.json()[-1]["info"]["error"]["name"] == "MessageAbortedError"
        older = await client.get(
            f"/session/{sid}/message", params={"limit": 2, "before": page.headers["x-next-cursor"]}
        )
        assert len(older.json()) == 2
        one = await client.get(f"/session/{sid}/message/{page.json()[0]['info']['id']}")
        assert one.json() == page.json()[0]


# -- directories -------------------------------------------------------------------------------


async def test_event_streams_are_scoped_and_global_wraps(oc, client, nursery):
    with trio.fail_after(TIMEOUT):
        a = await subscribe(nursery, client, params={"directory": PROJ_A})
        b = await subscribe(nursery, client, headers={"x-opencode-directory": PROJ_B})
        everything = await subscribe(nursery, client, "/global/event")
        sid = (await client.post("/session", params={"directory": PROJ_B}, json={})).json()["id"]
        created = await b.next(of_type("session.created"))
        assert created["properties"]["info"]["directory"] == PROJ_B
        wrapped = await everything.next(lambda f: f.get("directory") == PROJ_B)
        assert wrapped["payload"]["type"] == "session.created"
        assert wrapped["project"] == created["properties"]["info"]["projectID"]
        marker = (await client.post("/session", json={"title": "marker"})).json()["id"]
        first_in_a = await a.next(lambda f: True)
        assert first_in_a["properties"]["sessionID"] == marker  # nothing of B's session came
        assert sid != marker


# -- faults and restarts -----------------------------------------------------------------------


async def test_http_faults_happen_and_are_recorded():
    plan = FaultPlan()
    plan.add("http:GET /session", Status(status=503, retry_after=1.5))
    plan.add("http:GET /global/health", Delay(seconds=0.2))
    plan.add("http:POST /session", Drop())
    plan.add("sse:connect", Status(status=502))
    with trio.fail_after(TIMEOUT):
        async with (
            open_opencode_standin(directory=PROJ_A, plan=plan) as oc,
            httpx.AsyncClient(base_url=oc.url) as client,
        ):
            refused = await client.get("/session")
            assert (refused.status_code, refused.headers["retry-after"]) == (503, "1.5")
            assert refused.json()["name"] == "UnknownError"
            assert (await client.get("/session")).status_code == 200  # times=1
            t0 = trio.current_time()
            assert (await client.get("/global/health")).status_code == 200
            assert trio.current_time() - t0 >= 0.2
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await client.post("/session", json={})
            assert oc.standin.state.sessions == {}  # dropped before it was handled
            assert (await client.get("/event")).status_code == 502
            assert [r.target for r in plan.records] == [
                "http:GET /session",
                "http:GET /global/health",
                "http:POST /session",
                "sse:connect",
            ]
            faults = [(r.method, r.path, r.status) for r in oc.standin.requests if r.fault]
            assert faults == [
                ("GET", "/session", 503),
                ("GET", "/global/health", 200),
                ("POST", "/session", None),
                ("GET", "/event", 502),
            ]


async def test_restart_keeps_sessions_and_loses_pending_permissions(oc, client, nursery):
    with trio.fail_after(TIMEOUT):
        sse = await subscribe(nursery, client)
        sid = (await client.post("/session", json={"title": "r"})).json()["id"]
        body = {"parts": [{"type": "text", "text": "USE_TOOLS"}]}
        await client.post(f"/session/{sid}/prompt_async", json=body)
        await sse.next(of_type("permission.asked"))
        oc.stop()
        await sse.ended.wait()
        assert not oc.up
        with pytest.raises(httpx.ConnectError):
            await client.get("/global/health")
        await oc.start()
        assert (await client.get("/global/health")).status_code == 200
        assert (await client.get("/permission")).json() == []
        assert (await client.get("/session/status")).json() == {}
        assert (await client.get(f"/session/{sid}")).json()["title"] == "r"
        messages = (await client.get(f"/session/{sid}/message")).json()
        last = messages[-1]["info"]
        assert last["role"] == "assistant"
        assert "finish" not in last
        assert "completed" not in last["time"]
        fresh = await subscribe(nursery, client)
        await client.post(
            f"/session/{sid}/prompt_async", json={"parts": [{"type": "text", "text": "hi"}]}
        )
        await fresh.next(of_type("session.idle"))
        await oc.restart(down_for=0.05)
        assert (await client.get("/global/health")).status_code == 200


async def test_legacy_dialect_over_http(nursery):
    with trio.fail_after(TIMEOUT):
        async with (
            open_opencode_standin(directory=PROJ_A, dialect="legacy", chunk_delay=0.001) as oc,
            httpx.AsyncClient(base_url=oc.url) as client,
        ):
            assert (await client.get("/global/health")).json()["version"] == "1.0.150"
            sid = (await client.post("/session", json={})).json()["id"]
            sse = await subscribe(nursery, client)
            body = {"parts": [{"type": "text", "text": "RUN_BASH echo hi"}]}
            await client.post(f"/session/{sid}/prompt_async", json=body)
            asked = await sse.next(of_type("permission.updated"))
            permission_id = asked["properties"]["id"]
            listed = await client.get("/permission")
            assert listed.headers["content-type"].startswith("text/html")
            new_route = await client.post(
                f"/permission/{permission_id}/reply", json={"reply": "once"}
            )
            assert new_route.headers["content-type"].startswith("text/html")
            old_route = f"/session/{sid}/permissions/{permission_id}"
            assert (await client.post(old_route, json={"response": "once"})).json() is True
            replied = await sse.next(of_type("permission.replied"))
            assert replied["properties"] == {
                "sessionID": sid,
                "permissionID": permission_id,
                "response": "once",
            }
            await sse.next(of_type("session.idle"))
