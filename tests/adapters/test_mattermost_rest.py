"""The Mattermost REST client against ``httpx.MockTransport`` scenarios, on Trio's virtual clock.

Each scenario is a list of answers (or exceptions) the fake server gives in order; the fake
records when each request arrived, so retry timing is asserted exactly.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import trio

from mmthreads.adapters.mattermost_http import RateLimitStatus, api_url
from mmthreads.adapters.mattermost_rest import MattermostClient
from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import (
    ChatAuthError,
    ChatError,
    ChatFileTooLarge,
    ChatNotFound,
    ChatRateLimited,
    ChatRequestError,
    ChatUnavailable,
    ConfigError,
)
from mmthreads.wire.mattermost import ClientConfig, Post, User

TOKEN = "tok-SECRET-4711-do-not-leak"
URL = "http://mm.test:8065"
DEADLINE = 600  # virtual seconds

USER = {"id": "u" * 26, "username": "bot", "is_bot": True, "roles": "system_user"}
POST = {"id": "p" * 26, "channel_id": "c" * 26, "user_id": "u" * 26, "message": "hi"}

Answer = httpx.Response | Exception


def app_error(status: int, error_id: str, message: str) -> httpx.Response:
    body = {"id": error_id, "message": message, "request_id": "r" * 26, "status_code": status}
    return httpx.Response(status, json=body)


def limited(retry_after: str | None = None, **headers: str) -> httpx.Response:
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return httpx.Response(
        429,
        text="limit exceeded\n",
        headers={"Content-Type": "text/plain; charset=utf-8"} | headers,
    )


class FakeServer:
    """Answers requests from a script (the last answer repeats) and records them."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        await request.aread()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, url: str = URL, **options: Any) -> MattermostClient:
        return MattermostClient(url, TOKEN, transport=httpx.MockTransport(self), **options)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8065", "http://h:8065/api/v4"),
        ("http://h:8065/", "http://h:8065/api/v4"),
        ("http://h:8065/api/v4", "http://h:8065/api/v4"),
        ("https://h/api/v4/", "https://h/api/v4"),
        ("https://h/mattermost/", "https://h/mattermost/api/v4"),
    ],
)
async def test_base_url_is_normalised_to_api_v4(given: str, expected: str) -> None:
    assert api_url(given) == expected
    server = FakeServer(httpx.Response(200, json=USER))
    async with server.client(given) as client:
        assert await client.get_me() == User(id="u" * 26, username="bot", is_bot=True)
    assert str(server.requests[0].url) == expected + "/users/me"
    assert server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("url", ["ftp://h", "h:8065", "http://"])
def test_a_url_that_is_not_http_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        MattermostClient(url, TOKEN)


async def test_429_waits_the_retry_after_the_server_names(autojump_clock: trio.abc.Clock) -> None:
    server = FakeServer(limited("3"), limited("3"), httpx.Response(201, json=POST))
    async with server.client() as client:
        with trio.fail_after(DEADLINE):
            post = await client.create_post("c" * 26, "hi")
    assert post == Post(id="p" * 26, channel_id="c" * 26, user_id="u" * 26, message="hi")
    assert server.times == [0.0, 3.0, 6.0]
    assert trio.current_time() == 6.0


async def test_429_without_retry_after_waits_the_reset(autojump_clock: trio.abc.Clock) -> None:
    reset = {"X-Ratelimit-Limit": "101", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "2"}
    server = FakeServer(limited(**reset), httpx.Response(200, json=USER))
    async with server.client() as client:
        with trio.fail_after(DEADLINE):
            await client.get_me()
        assert client.rate_limit == RateLimitStatus(
            limit=101, remaining=0, reset_after=2.0, observed_at=0.0
        )
    assert server.times == [0.0, 2.0]


async def test_429_gives_up_after_the_allowed_refusals(autojump_clock: trio.abc.Clock) -> None:
    server = FakeServer(limited("1.5"))
    async with server.client(rate_limit_retries=2) as client:
        with trio.fail_after(DEADLINE), pytest.raises(ChatRateLimited) as caught:
            await client.get_me()
    assert caught.value.retry_after == 1.5
    assert server.times == [0.0, 1.5, 3.0]


async def test_a_wait_longer_than_allowed_is_not_slept(autojump_clock: trio.abc.Clock) -> None:
    server = FakeServer(limited("3600"))
    async with server.client(max_retry_after=60) as client:
        with pytest.raises(ChatRateLimited) as caught:
            await client.get_me()
    assert caught.value.retry_after == 3600
    assert isinstance(caught.value, ChatUnavailable)
    assert trio.current_time() == 0.0


async def test_5xx_is_retried_with_the_policy_then_unavailable(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = FakeServer(httpx.Response(500, json={"id": "", "message": "Internal"}))
    async with server.client() as client:  # the default policy: 0.5, 1, 2 s, three retries
        with trio.fail_after(DEADLINE), pytest.raises(ChatUnavailable, match="HTTP 500"):
            await client.get_post("p" * 26)
    assert server.times == [0.0, 0.5, 1.5, 3.5]
    assert trio.current_time() == 3.5


async def test_5xx_then_success(autojump_clock: trio.abc.Clock) -> None:
    policy = RetryPolicy(initial_delay=1, factor=3, max_delay=100, max_attempts=5)
    server = FakeServer(httpx.Response(502), httpx.Response(503), httpx.Response(200, json=POST))
    async with server.client(retry_policy=policy) as client:
        with trio.fail_after(DEADLINE):
            assert (await client.get_post("p" * 26)).id == "p" * 26
    assert server.times == [0.0, 1.0, 4.0]


async def test_jitter_takes_its_random_number_from_the_caller(
    autojump_clock: trio.abc.Clock,
) -> None:
    policy = RetryPolicy(initial_delay=2, factor=2, max_delay=10, max_attempts=2, jitter=0.5)
    server = FakeServer(httpx.Response(500), httpx.Response(500), httpx.Response(200, json=USER))
    async with server.client(retry_policy=policy, random=lambda: 0.0) as client:
        with trio.fail_after(DEADLINE):
            await client.get_me()
    assert server.times == [0.0, 1.0, 3.0]


@pytest.mark.parametrize(
    ("answer", "retried"),
    [
        (httpx.Response(500), False),  # the post may exist: never repeated
        (httpx.ReadError("connection reset"), False),
        (httpx.ReadTimeout("slow"), False),
        (httpx.Response(503), True),  # the server did not act
        (httpx.ConnectError("refused"), True),  # the request never left
        (httpx.ConnectTimeout("no route"), True),
    ],
)
async def test_creating_a_post_is_only_repeated_when_it_cannot_have_happened(
    autojump_clock: trio.abc.Clock, answer: Answer, retried: bool
) -> None:
    server = FakeServer(answer, httpx.Response(201, json=POST))
    async with server.client() as client:
        if retried:
            assert (await client.create_post("c" * 26, "hi")).id == "p" * 26
            assert server.times == [0.0, 0.5]
        else:
            with pytest.raises(ChatUnavailable):
                await client.create_post("c" * 26, "hi")
            assert server.times == [0.0]


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadError("reset"), httpx.ReadTimeout("slow")],
)
async def test_network_errors_are_retried_then_unavailable(
    autojump_clock: trio.abc.Clock, error: Exception
) -> None:
    server = FakeServer(error)
    async with server.client() as client:
        with trio.fail_after(DEADLINE), pytest.raises(ChatUnavailable) as caught:
            await client.get_thread("p" * 26)
    assert server.times == [0.0, 0.5, 1.5, 3.5]
    assert type(error).__name__ in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.TransportError)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ChatRequestError),
        (401, ChatAuthError),
        (403, ChatAuthError),
        (404, ChatNotFound),
        (413, ChatRequestError),
    ],
)
async def test_app_errors_map_to_chat_errors(status: int, kind: type[ChatRequestError]) -> None:
    server = FakeServer(app_error(status, "api.post.some.app_error", "Some English text."))
    async with server.client() as client:
        with pytest.raises(ChatRequestError) as caught:
            await client.patch_post("p" * 26, message="x")
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.error_id) == (status, "api.post.some.app_error")
    assert caught.value.message == "Some English text."
    assert caught.value.endpoint == f"PUT /posts/{'p' * 26}/patch"
    assert len(server.requests) == 1


async def test_an_html_answer_is_a_request_error() -> None:
    html = httpx.Response(
        200, text="<html>proxy login</html>", headers={"Content-Type": "text/html"}
    )
    server = FakeServer(html, httpx.Response(400, text="<html>bad</html>"))
    async with server.client() as client:
        with pytest.raises(ChatRequestError, match="unreadable answer"):
            await client.get_me()
        with pytest.raises(ChatRequestError) as caught:
            await client.get_me()
    assert (caught.value.status, caught.value.error_id) == (400, "")
    assert caught.value.message == "<html>bad</html>"


async def test_requests_have_the_documented_shapes() -> None:
    upload = {"file_infos": [{"id": "f" * 26, "name": "a.txt", "size": 3}], "client_ids": []}
    config = {"MaxPostSize": "16383", "MaxFileSize": "1048576", "Version": "10.5.0"}
    server = FakeServer(
        httpx.Response(201, json=POST),
        httpx.Response(200, json=POST),
        httpx.Response(201, json=upload),
        httpx.Response(200, json={"status": "OK"}),
        httpx.Response(200, json={"status": "OK"}),
        httpx.Response(200, json=config),
    )
    async with server.client() as client:
        await client.create_post(
            "c" * 26, "reply", root_id="r" * 26, props={"session": "ses_1"}, file_ids=["f" * 26]
        )
        await client.patch_post("p" * 26, props={})
        info = await client.upload_file("c" * 26, "a.txt", b"abc")
        await client.remove_reaction("u" * 26, "p" * 26, "+1")
        await client.typing("c" * 26, "r" * 26)
        limits = await client.client_config()
    create, patch, files, unreact, typing, get_config = server.requests
    assert json.loads(create.content) == {
        "channel_id": "c" * 26,
        "message": "reply",
        "root_id": "r" * 26,
        "props": {"session": "ses_1"},
        "file_ids": ["f" * 26],
    }
    assert create.headers["Content-Type"] == "application/json"
    assert json.loads(patch.content) == {"props": {}}  # a patch names only what changes
    assert info.id == "f" * 26
    body = files.content
    assert body.index(b'name="channel_id"') < body.index(b'name="files"; filename="a.txt"')
    assert unreact.method == "DELETE"
    assert unreact.url.raw_path.decode().endswith(f"/posts/{'p' * 26}/reactions/%2B1")
    assert typing.url.path == "/api/v4/users/me/typing"
    assert json.loads(typing.content) == {"channel_id": "c" * 26, "parent_id": "r" * 26}
    assert get_config.url.params["format"] == "old"
    assert limits == ClientConfig(max_post_size=16383, max_file_size=1048576, version="10.5.0")


async def test_a_thread_is_fetched_page_by_page() -> None:
    def post(n: int) -> dict[str, Any]:
        return POST | {"id": f"{n:026d}", "create_at": 1000 + n, "root_id": "" if n == 0 else "0"}

    first = {"order": ["0" * 26, f"{1:026d}"], "posts": {p["id"]: p for p in (post(0), post(1))}}
    second = {"order": [f"{2:026d}"], "posts": {p["id"]: p for p in (post(0), post(2))}}
    server = FakeServer(
        httpx.Response(200, json=first | {"has_next": True}),
        httpx.Response(200, json=second | {"has_next": False}),
    )
    async with server.client() as client:
        thread = await client.get_thread("0" * 26)
    assert [p.create_at for p in thread.in_order()] == [1000, 1001, 1002]
    assert thread.order == [f"{n:026d}" for n in range(3)]
    one, two = (request.url.params for request in server.requests)
    assert (one["perPage"], one["direction"], "fromPost" in one) == ("200", "down", False)
    assert (two["fromPost"], two["fromCreateAt"]) == (f"{1:026d}", "1001")


async def test_a_download_stops_at_the_size_limit() -> None:
    declared = httpx.Response(200, content=b"x" * 100)  # Content-Length: 100
    undeclared = httpx.Response(200, stream=httpx.ByteStream(b"y" * 100))
    server = FakeServer(declared, undeclared, httpx.Response(200, content=b"small"))
    async with server.client() as client:
        for _ in range(2):
            with pytest.raises(ChatFileTooLarge) as caught:
                await client.get_file("f" * 26, max_bytes=99)
            assert (caught.value.file_id, caught.value.limit) == ("f" * 26, 99)
        assert await client.get_file("f" * 26, max_bytes=5) == b"small"


@pytest.mark.parametrize(
    "answer",
    [
        app_error(401, "api.context.session_expired.app_error", f"bad token {TOKEN}"),
        httpx.Response(403, text=f"echo: Authorization: Bearer {TOKEN}"),
        httpx.ConnectError(f"cannot reach (token {TOKEN}?)"),
        httpx.DecodingError(f"odd gzip near {TOKEN}"),
        limited("1"),
        httpx.Response(500),
        httpx.Response(200, text=f"<html>{TOKEN}</html>"),
    ],
)
async def test_the_token_never_leaks(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, answer: Answer
) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeServer(answer)
    async with server.client(rate_limit_retries=1) as client:
        assert TOKEN not in repr(client)
        with trio.fail_after(DEADLINE), pytest.raises(ChatError) as caught:
            await client.get_me()
    error = caught.value
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
