"""REST v4 without a socket: ``rest.handle`` is sans-IO, so every route is tested in memory."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from mmthreads.harness.mattermost.rest import Request, Response, handle

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import MattermostEmulator

BOUNDARY = "----mmthreadsBoundary"


class Client:
    def __init__(self, emulator: MattermostEmulator, token: str | None) -> None:
        self.emulator = emulator
        self.token = token

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Response:
        all_headers = {"content-type": "application/json"}
        if self.token:
            all_headers["authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        request = Request(
            method=method,
            path="/api/v4" + path,
            query={k: [v] for k, v in (query or {}).items()},
            headers=all_headers,
            body=data,
        )
        response = handle(self.emulator, request)
        self.emulator.flush()
        return response


def _json(response: Response) -> Any:
    return json.loads(response.body)


@pytest.fixture
def setup(emulator: MattermostEmulator) -> tuple[Client, Client, str, str, str]:
    bot = emulator.create_user("bot", bot=True, token="bot-token")
    alice = emulator.create_user("alice", token="alice-token")
    as_bot, as_alice = Client(emulator, bot.token), Client(emulator, alice.token)
    dm = _json(as_bot("POST", "/channels/direct", [bot.id, alice.id]))["id"]
    return as_bot, as_alice, dm, bot.id, alice.id


def test_every_response_has_the_servers_headers(setup) -> None:
    as_bot, *_ = setup
    ok = as_bot("GET", "/users/me")
    error = as_bot("GET", "/posts/" + "p" * 26)
    for response in (ok, error):
        assert response.header("Content-Type") == "application/json"
        assert (response.header("X-Version-Id") or "").startswith("9.11.0.")
        assert response.header("X-Content-Type-Options") == "nosniff"
        assert response.header("Referrer-Policy") == "no-referrer"
        assert response.header("Expires") == "0"
        assert len(response.header("X-Request-Id") or "") == 26
    body = _json(error)
    assert list(body) == ["id", "message", "detailed_error", "request_id", "status_code"]
    assert body == {
        "id": "app.post.get.app_error",
        "message": "Unable to get the post.",
        "detailed_error": "",
        "request_id": error.header("X-Request-Id"),
        "status_code": 404,
    }
    assert (
        as_bot("POST", "/posts", {"channel_id": setup[2], "message": "x"}).header("Expires") is None
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"authorization": "Bearer bot-token"}, 200),
        ({"authorization": "BEARER bot-token"}, 200),
        ({"authorization": "bearer bot-token"}, 200),
        ({"authorization": "Token bot-token"}, 200),
        ({"cookie": "other=1; MMAUTHTOKEN=bot-token"}, 200),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": "Basic Ym90OnB3"}, 401),
        ({}, 401),
    ],
)
def test_auth_schemes(emulator: MattermostEmulator, headers: dict[str, str], status: int) -> None:
    emulator.create_user("bot", bot=True, token="bot-token")
    response = Client(emulator, None)("GET", "/users/me", headers=headers)
    assert response.status == status
    if status == 401:
        assert _json(response)["id"] == "api.context.session_expired.app_error"


def test_query_tokens_are_refused(emulator: MattermostEmulator) -> None:
    emulator.create_user("bot", bot=True, token="bot-token")
    response = Client(emulator, None)("GET", "/users/me", query={"access_token": "bot-token"})
    assert (response.status, _json(response)["id"]) == (401, "api.context.token_provided.app_error")


def test_status_codes_of_the_bots_calls(setup) -> None:
    as_bot, as_alice, dm, bot_id, alice_id = setup
    again = as_alice("POST", "/channels/direct", [alice_id, bot_id])
    assert (again.status, _json(again)["id"]) == (201, dm)
    created = as_alice("POST", "/posts", {"channel_id": dm, "message": "hi"})
    assert created.status == 201
    post_id = _json(created)["id"]
    reaction = as_bot(
        "POST", "/reactions", {"user_id": bot_id, "post_id": post_id, "emoji_name": "eyes"}
    )
    assert reaction.status == 200
    patched = as_alice("PUT", f"/posts/{post_id}/patch", {"id": post_id, "message": "hey"})
    assert (patched.status, _json(patched)["message"]) == (200, "hey")
    typing = as_bot("POST", f"/users/{bot_id}/typing", {"channel_id": dm})
    assert (typing.status, _json(typing)) == (200, {"status": "OK"})
    removed = as_bot("DELETE", f"/users/{bot_id}/posts/{post_id}/reactions/eyes", {})
    assert (removed.status, _json(removed)) == (200, {"status": "OK"})
    deleted = as_alice("DELETE", f"/posts/{post_id}", {})
    assert (deleted.status, _json(deleted)) == (200, {"status": "OK"})


def test_bodies_on_get_and_double_slashes_are_tolerated(setup) -> None:
    as_bot, as_alice, dm, bot_id, _ = setup
    post_id = _json(as_alice("POST", "/posts", {"channel_id": dm, "message": "x"}))["id"]
    as_bot("POST", "/reactions", {"user_id": bot_id, "post_id": post_id, "emoji_name": "+1"})
    response = as_bot("GET", f"/posts/{post_id}//reactions", {})
    assert response.status == 200
    assert [r["emoji_name"] for r in _json(response)] == ["+1"]
    assert as_bot("GET", "/users/me", {}).status == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "error_id"),
    [
        ("GET", "/nope", 404, "api.context.404.app_error"),
        ("GET", "/posts/short", 400, "api.context.invalid_url_param.app_error"),
        ("POST", "/posts/" + "p" * 26 + "/thread", 405, None),
    ],
)
def test_routing_errors(setup, method: str, path: str, status: int, error_id: str | None) -> None:
    response = setup[0](method, path)
    assert response.status == status
    if error_id:
        assert _json(response)["id"] == error_id


def test_malformed_json_is_an_invalid_param(setup) -> None:
    as_bot, _, dm, *_ = setup
    response = as_bot("POST", "/posts", raw=b'{"channel_id": ')
    assert (response.status, _json(response)["id"]) == (400, "api.context.invalid_param.app_error")
    assert _json(response)["message"] == "Invalid post parameter."
    wrong_type = as_bot("POST", "/posts", {"channel_id": dm, "message": 5})
    assert wrong_type.status == 400


def test_thread_parameters_and_etag(setup) -> None:
    as_bot, as_alice, dm, *_ = setup
    root = _json(as_alice("POST", "/posts", {"channel_id": dm, "message": "x"}))["id"]
    assert as_bot("GET", f"/posts/{root}/thread", query={"perPage": "201"}).status == 400
    assert as_bot("GET", f"/posts/{root}/thread", query={"perPage": "many"}).status == 400
    first = as_bot("GET", f"/posts/{root}/thread", query={"perPage": "60", "direction": "down"})
    assert _json(first)["order"] == [root]
    etag = first.header("Etag")
    assert etag
    cached = as_bot("GET", f"/posts/{root}/thread", headers={"if-none-match": etag})
    assert cached.status == 304
    assert cached.body == b""


def _multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    chunks = []
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        chunks.append(
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    body = b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


BINARY = bytes(range(256)) * 4 + b"\r\n--" + BOUNDARY.encode() + b"x\r\n"


@pytest.mark.parametrize("channel_first", [True, False], ids=["channel-first", "files-first"])
def test_multipart_upload_in_both_field_orders(setup, channel_first: bool) -> None:
    as_bot, _, dm, bot_id, _ = setup
    fields = [
        ("files", "report.bin", BINARY),
        ("files", "notes.txt", "h\u00e9llo".encode()),
        ("client_ids", None, b"c1"),
        ("client_ids", None, b"c2"),
    ]
    channel = ("channel_id", None, dm.encode())
    body, content_type = _multipart([channel, *fields] if channel_first else [*fields, channel])
    response = as_bot("POST", "/files", raw=body, headers={"content-type": content_type})
    assert response.status == 201
    result = _json(response)
    assert result["client_ids"] == ["c1", "c2"]
    infos = result["file_infos"]
    assert [(i["name"], i["size"], i["post_id"]) for i in infos] == [
        ("report.bin", len(BINARY), ""),
        ("notes.txt", 6, ""),
    ]
    assert infos[1]["mime_type"] == "text/plain"
    assert infos[1]["extension"] == "txt"
    download = as_bot("GET", f"/files/{infos[0]['id']}")
    assert download.body == BINARY
    assert download.header(
        "Content-Disposition",
    ).startswith('attachment;filename="report.bin"')
    info = as_bot("GET", f"/files/{infos[1]['id']}/info")
    assert _json(info)["user_id"] == bot_id


def test_simple_upload_and_attaching(setup) -> None:
    as_bot, as_alice, dm, *_ = setup
    response = as_bot(
        "POST", "/files", raw=b"raw bytes", headers={"content-type": "application/octet-stream"},
        query={"channel_id": dm, "filename": "raw.dat"},
    )  # fmt: skip
    assert response.status == 201
    file_id = _json(response)["file_infos"][0]["id"]
    post = _json(
        as_bot("POST", "/posts", {"channel_id": dm, "message": "f", "file_ids": [file_id]})
    )
    assert post["file_ids"] == [file_id]
    assert post["metadata"]["files"][0]["post_id"] == post["id"]
    listed = as_alice("GET", f"/posts/{post['id']}/files/info")
    assert [i["id"] for i in _json(listed)] == [file_id]


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ([("channel_id", None, b"")], 400),
        ([("files", "a.txt", b"a")], 400),
        ([("channel_id", None, b"DM"), ("files", "a.txt", b"a"), ("other", None, b"1")], 400),
        ([("channel_id", None, b"DM"), ("files", "a.txt", b"a"), ("client_ids", None, b"1"),
          ("client_ids", None, b"2")], 400),
        ([("channel_id", None, b"DM")], 400),
    ],
)  # fmt: skip
def test_upload_errors(setup, fields: list[tuple[str, str | None, bytes]], status: int) -> None:
    as_bot, _, dm, *_ = setup
    fields = [(n, f, dm.encode() if d == b"DM" else d) for n, f, d in fields]
    body, content_type = _multipart(fields)
    assert (
        as_bot("POST", "/files", raw=body, headers={"content-type": content_type}).status == status
    )
    empty = as_bot("POST", "/files", raw=b"", headers={"content-type": content_type})
    assert empty.status == 400


def test_client_config_and_ping_need_no_session(emulator: MattermostEmulator) -> None:
    anonymous = Client(emulator, None)
    config = anonymous("GET", "/config/client", query={"format": "old"})
    assert config.status == 200
    assert _json(config)["MaxPostSize"] == "16383"
    assert all(isinstance(v, str) for v in _json(config).values())
    assert anonymous("GET", "/config/client").status == 501
    assert _json(anonymous("GET", "/system/ping"))["status"] == "OK"


def test_users_endpoints(setup) -> None:
    as_bot, as_alice, dm, bot_id, alice_id = setup
    assert _json(as_bot("GET", "/users/username/alice"))["id"] == alice_id
    assert _json(as_bot("GET", f"/users/{alice_id}"))["username"] == "alice"
    assert as_bot("GET", "/users/" + "u" * 26).status == 404
    users = _json(as_bot("POST", "/users/ids", [alice_id, bot_id, "q" * 26]))
    assert {u["id"] for u in users} == {alice_id, bot_id}
    channels = _json(as_bot("GET", "/users/me/channels"))
    assert [c["id"] for c in channels] == [dm]
    assert as_bot("GET", f"/users/{alice_id}/channels").status == 403
    assert _json(as_alice("GET", f"/channels/{dm}"))["type"] == "D"
