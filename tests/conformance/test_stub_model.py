"""The stub model over loopback HTTP: stream format, tool calls, titles, failures, the record.

Requests are shaped like those ``opencode`` 1.18.33 sends (``@ai-sdk/openai-compatible``);
``test_real_opencode_smoke.py`` checks the same against the real server.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from mmthreads.harness.faults import CutStream, Delay, FaultPlan, Status
from mmthreads.harness.script import Attachment, CallTool, Reply, chunk_text, plan_step
from mmthreads.harness.stub_model import (
    StubModel,
    open_stub_model,
    read_turn,
    serve_stub_model,
    stream_frames,
    title_for,
)
from mmthreads.harness.stub_model.request import ChatRequest, decode_request
from mmthreads.harness.stub_model.response import Usage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mmthreads.harness.stub_model import RunningStubModel

TOOLS = [
    {"type": "function", "function": {"name": name, "description": "", "parameters": {}}}
    for name in ("bash", "question", "todowrite")
]
SYSTEM = {"role": "system", "content": "You are opencode."}


@pytest.fixture
async def stub() -> AsyncIterator[RunningStubModel]:
    async with open_stub_model(chunk_delay=0) as running:
        yield running


@pytest.fixture
async def client(stub: RunningStubModel) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stub.url, timeout=10) as http:
        yield http


def body(*messages: dict[str, Any], tools: bool = True, stream: bool = True) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": "stub-model",
        "max_tokens": 4096,
        "messages": [SYSTEM, *messages],
        "stream": stream,
        "stream_options": {"include_usage": True},
    }
    if tools:
        request["tools"] = TOOLS
        request["tool_choice"] = "auto"
    return request


def user(content: str | list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "user", "content": content}


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


def tool_result(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking the framing on the way."""
    assert text.endswith("\n\n")
    frames = text[:-2].split("\n\n")
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames)
    return [frame[len("data: ") :] for frame in frames]


async def completion(client: httpx.AsyncClient, request: dict[str, Any]) -> httpx.Response:
    return await client.post("/chat/completions", json=request)


async def stream_chunks(client: httpx.AsyncClient, request: dict[str, Any]) -> list[dict[str, Any]]:
    response = await completion(client, request)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


async def test_text_reply_streams_chunk_by_chunk(
    stub: RunningStubModel, client: httpx.AsyncClient
) -> None:
    expected = plan_step("hi there", 0)
    assert isinstance(expected, Reply)
    chunks = await stream_chunks(client, body(user("hi there")))

    assert {c["id"] for c in chunks} == {"chatcmpl-stub-0"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"stub-model"}
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": expected.reasoning}
    pieces = chunk_text(expected.text)
    content = chunks[2 : 2 + len(pieces)]
    assert [c["choices"][0]["delta"] for c in content] == [{"content": p} for p in pieces]
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    finish, usage = chunks[2 + len(pieces) :]
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert usage["choices"] == []
    tokens = usage["usage"]
    assert tokens["total_tokens"] == tokens["prompt_tokens"] + tokens["completion_tokens"] > 0

    [recorded] = stub.requests
    assert recorded.prompt == "hi there"
    assert recorded.tools == ("bash", "question", "todowrite")
    assert recorded.step == expected
    assert recorded.finished
    assert not recorded.disconnected


async def test_tool_calls_stream_name_then_argument_fragments(client: httpx.AsyncClient) -> None:
    prompt = "USE_TOOLS please"
    expected = plan_step(prompt, 0)
    assert isinstance(expected, CallTool)
    chunks = await stream_chunks(client, body(user(prompt)))
    calls = [d["tool_calls"] for d in deltas(chunks) if "tool_calls" in d]

    assert calls[0] == [
        {
            "index": 0,
            "id": "call_stub_0",
            "type": "function",
            "function": {"name": "todowrite", "arguments": ""},
        }
    ]
    fragments = [c[0]["function"]["arguments"] for c in calls[1:]]
    assert len(fragments) > 1
    assert all(set(c[0]) == {"index", "function"} for c in calls[1:])
    assert json.loads("".join(fragments)) == expected.args
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []


async def test_the_turn_advances_with_each_tool_result(
    stub: RunningStubModel, client: httpx.AsyncClient
) -> None:
    todos = plan_step("USE_TOOLS", 0)
    assert isinstance(todos, CallTool)
    first = [user("USE_TOOLS"), tool_call("c1", "todowrite", todos.args)]
    first.append(tool_result("c1", "[]"))
    second = [*first, tool_call("c2", "bash", {"command": "echo hello-from-tool"})]
    second.append(tool_result("c2", "hello-from-tool\n"))

    chunks = await stream_chunks(client, body(*first))
    names = [
        d["tool_calls"][0]["function"].get("name") for d in deltas(chunks) if "tool_calls" in d
    ]
    assert names[0] == "bash"
    chunks = await stream_chunks(client, body(*second))
    text = "".join(d.get("content", "") for d in deltas(chunks))
    assert text == "Finished: tools ran OK."

    turns = [r.turn for r in stub.requests]
    assert [t.done_tools for t in turns if t] == [1, 2]
    assert turns[1] is not None
    assert turns[1].tool_results == ("[]", "hello-from-tool\n")


def test_only_tool_results_after_the_last_user_message_count() -> None:
    earlier = [user("USE_TOOLS"), tool_call("c1", "todowrite", {}), tool_result("c1", "[]")]
    request = msgspec_request(body(*earlier, {"role": "assistant", "content": "ok"}, user("hi")))
    turn = read_turn(request)
    assert (turn.prompt, turn.done_tools, turn.tool_results) == ("hi", 0, ())


def msgspec_request(payload: dict[str, Any]) -> ChatRequest:
    return decode_request(json.dumps(payload).encode())


async def test_title_requests_have_no_tools_and_get_a_short_title(
    stub: RunningStubModel, client: httpx.AsyncClient
) -> None:
    # What OpenCode sends: the title prompt, then the user's message, and no tools.
    prompt = "ASK_QUESTION about the colour of the new button, please"
    intro = user("Generate a title for this conversation:\n")
    chunks = await stream_chunks(client, body(intro, user(prompt), tools=False))
    text = "".join(d.get("content", "") for d in deltas(chunks))
    assert text == title_for(prompt) == "ASK_QUESTION about the colour of the"
    [recorded] = stub.requests
    assert recorded.is_title
    assert recorded.prompt == prompt
    assert title_for("") == "Stub title"


@pytest.mark.parametrize(("directive", "status"), [("FAIL_400", 400), ("FAIL_503", 503)])
async def test_failures_answer_with_an_openai_error_body(
    stub: RunningStubModel, client: httpx.AsyncClient, directive: str, status: int
) -> None:
    response = await completion(client, body(user(f"{directive} now")))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["message"] == f"stub forced error {status}"
    assert stub.requests[0].status == status


async def test_non_streaming_requests_get_a_plain_completion(client: httpx.AsyncClient) -> None:
    response = await completion(client, body(user("hello"), stream=False))
    answer = response.json()
    assert answer["object"] == "chat.completion"
    [choice] = answer["choices"]
    expected = plan_step("hello", 0)
    assert isinstance(expected, Reply)
    assert choice["message"]["content"] == expected.text
    assert choice["message"]["reasoning_content"] == expected.reasoning
    assert choice["finish_reason"] == "stop"
    assert set(answer["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}

    response = await completion(client, body(user("RUN_BASH ls -la"), stream=False))
    [choice] = response.json()["choices"]
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "bash"
    assert json.loads(call["function"]["arguments"])["command"] == "ls -la"
    assert choice["finish_reason"] == "tool_calls"


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def test_attachments_are_read_and_recorded(
    stub: RunningStubModel, client: httpx.AsyncClient
) -> None:
    text = "line one\nline two\n"
    png, pdf = b"\x89PNG fake", b"%PDF-1.4 fake"
    # Exactly the parts opencode 1.18.33 makes of a text file, an image, a PDF, and of an
    # image and a PDF for a model without image or PDF input.
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "ECHO_FILES please"},
        {
            "type": "text",
            "text": 'Called the Read tool with the following input: {"filePath":"notes.txt"}',
        },
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": data_url("image/png", png)}},
        {
            "type": "file",
            "file": {"filename": "doc.pdf", "file_data": data_url("application/pdf", pdf)},
        },
        {
            "type": "text",
            "text": 'ERROR: Cannot read "big.png" (this model does not support image input).'
            " Inform the user.",
        },
        {
            "type": "text",
            "text": 'ERROR: Cannot read "big.pdf" (this model does not support pdf input).'
            " Inform the user.",
        },
    ]
    chunks = await stream_chunks(client, body(user(content)))
    expected = (
        Attachment("notes.txt", "text/plain", len(text)),
        Attachment("image-2", "image/png", len(png)),
        Attachment("doc.pdf", "application/pdf", len(pdf)),
        Attachment("big.png", "image/*", -1),
        Attachment("big.pdf", "application/pdf", -1),
    )
    [recorded] = stub.requests
    assert recorded.prompt == "ECHO_FILES please"
    assert recorded.attachments == expected
    assert text in recorded.text()
    reply = "".join(d.get("content", "") for d in deltas(chunks))
    assert reply.splitlines() == [
        f"Received {a.filename} ({a.mime}, {a.size} bytes)" for a in expected
    ]


async def test_question_answers_reach_the_script_as_the_chosen_labels(
    stub: RunningStubModel, client: httpx.AsyncClient
) -> None:
    question = plan_step("ASK_QUESTION", 0)
    assert isinstance(question, CallTool)
    output = (
        'User has answered your questions: "Which colour should the button be?"="Blue". '
        "You can now continue with the user's answers in mind."
    )
    messages = [user("ASK_QUESTION"), tool_call("q1", "question", question.args)]
    chunks = await stream_chunks(client, body(*messages, tool_result("q1", output)))
    assert "".join(d.get("content", "") for d in deltas(chunks)) == "You chose: Blue"
    turn = stub.requests[0].turn
    assert turn is not None
    assert turn.tool_results == ("Blue",)


async def test_wait_request_sees_past_and_future_requests(
    stub: RunningStubModel, client: httpx.AsyncClient
) -> None:
    await completion(client, body(user("first")))
    assert (await stub.wait_request()).prompt == "first"
    async with trio.open_nursery() as nursery:
        found: list[str] = []

        async def waiter() -> None:
            request = await stub.wait_request(lambda r: r.prompt == "second", start=1)
            found.append(request.prompt)

        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        assert found == []
        await completion(client, body(user("second")))
    assert found == ["second"]


async def test_a_client_hanging_up_is_recorded() -> None:
    async with (
        open_stub_model(chunk_delay=0.01) as stub,
        httpx.AsyncClient(base_url=stub.url) as client,
    ):
        with trio.fail_after(10):
            request = body(user("SLOW 200"))
            # Hang up by cancelling the read: the stream's generators unwind cleanly.
            with trio.CancelScope() as hang_up:
                async with client.stream("POST", "/chat/completions", json=request) as response:
                    async for line in response.aiter_lines():
                        if "tick" in line:
                            hang_up.cancel()
            recorded = await stub.wait_request(lambda r: r.disconnected)
    assert not recorded.finished


async def test_fault_plan_statuses_and_cut_streams() -> None:
    plan = FaultPlan()
    plan.add("http:POST /v1/chat/completions", Status(status=429, retry_after=2))
    plan.add("http:POST /v1/chat/completions", Delay(seconds=0.01))
    plan.add("http:POST /v1/chat/completions", CutStream())
    async with (
        open_stub_model(chunk_delay=0, plan=plan) as stub,
        httpx.AsyncClient(base_url=stub.url) as client,
    ):
        limited = await completion(client, body(user("hi")))
        delayed = await completion(client, body(user("hi")))
        cut = await completion(client, body(user("hi")))
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert delayed.status_code == 200
    assert sse_data(delayed.text)[-1] == "[DONE]"
    assert len(sse_data(cut.text)) == 1  # the role chunk, then the stream ends
    assert [r.fault for r in stub.requests] == ["Status", "Delay", "CutStream"]
    assert [r.finished for r in stub.requests] == [False, True, False]
    assert [r.target for r in plan.records] == ["http:POST /v1/chat/completions"] * 3


async def test_other_routes_and_bad_bodies(
    stub: RunningStubModel, client: httpx.AsyncClient
) -> None:
    models = await client.get("/models")
    assert models.json()["data"][0]["id"] == "stub-model"
    missing = await client.get("/nothing")
    assert missing.status_code == 404
    assert "error" in missing.json()
    bad = await client.post("/chat/completions", content=b"{not json")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("invalid request")
    assert stub.requests[-1].request is None


def test_stream_frames_wait_before_each_text_piece_only() -> None:
    reply = Reply(text="one two three", reasoning="hmm")
    frames = stream_frames(
        reply,
        completion_id="c",
        call_id="k",
        model="m",
        created=0,
        usage=Usage(1, 2, 3),
        chunk_delay=0.25,
    )
    assert [f.delay for f in frames] == [0, 0, 0.25, 0.25, 0.25, 0, 0, 0]
    slow = stream_frames(
        Reply(text="tick " * 3, slow_chunks=3),
        completion_id="c",
        call_id="k",
        model="m",
        created=0,
        usage=Usage(1, 2, 3),
        chunk_delay=0.25,
    )
    assert sum(f.delay for f in slow) == 0.75


async def test_serve_stub_model_reports_its_url_and_stops_on_its_trigger() -> None:
    model = StubModel(chunk_delay=0)
    stop = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                lambda task_status: serve_stub_model(
                    model, shutdown_trigger=stop.wait, task_status=task_status
                )
            )
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith("/v1")
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/models")).status_code == 200
            stop.set()
    assert model.requests == []
