"""schemathesis fuzzes the emulator with the bot-relevant operations of Mattermost's own OpenAPI
spec (the merged 2023 ``mattermost-api-reference``), checking that nothing crashes and that what
comes back matches the spec where the spec is meaningful.

The spec is loose and in places wrong about the real server (``mattermost-api.md`` §5), so the
checks are chosen operation by operation; every disabled check says why.  Path, query and body
ids are pinned to real objects made before the run, otherwise nearly every request would stop at
a 404 and the handlers behind it would go untested.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio

from mmthreads.harness.mattermost import open_mattermost_emulator

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.fidelity

SEED = 20230629
MAX_EXAMPLES = 25
DEADLINE = 75.0

#: The operations a DM-thread bot uses: operationId in the 2023 spec -> schemathesis' label.
OPERATIONS = {
    "GetUser": "GET /api/v4/users/{user_id}",
    "GetUserByUsername": "GET /api/v4/users/username/{username}",
    "CreateDirectChannel": "POST /api/v4/channels/direct",
    "GetChannel": "GET /api/v4/channels/{channel_id}",
    "CreatePost": "POST /api/v4/posts",
    "GetPost": "GET /api/v4/posts/{post_id}",
    "PatchPost": "PUT /api/v4/posts/{post_id}/patch",
    "DeletePost": "DELETE /api/v4/posts/{post_id}",
    "GetPostThread": "GET /api/v4/posts/{post_id}/thread",
    "GetPostsForChannel": "GET /api/v4/channels/{channel_id}/posts",
    "SaveReaction": "POST /api/v4/reactions",
    "GetReactions": "GET /api/v4/posts/{post_id}/reactions",
    "DeleteReaction": "DELETE /api/v4/users/{user_id}/posts/{post_id}/reactions/{emoji_name}",
    "UploadFile": "POST /api/v4/files",
    "GetFileInfo": "GET /api/v4/files/{file_id}/info",
    "GetFileInfosForPost": "GET /api/v4/posts/{post_id}/files/info",
}

#: Checks that run on every operation.
CHECKS_ON = (
    # A 5xx is never right for anything a client can send.
    "not_a_server_error",
    # The spec only ever says application/json; clients compare the header with `==`.
    "content_type_conformance",
    # Bodies against the spec's schemas (User, Channel, Post, PostList, Reaction, FileInfo,
    # AppError).  They have no additionalProperties:false, so extra real fields are fine.
    "response_schema_conformance",
    # Headers the spec documents for a response, where it documents any.
    "response_headers_conformance",
    # Every selected operation requires a session: without the token the answer must be 401.
    "ignored_auth",
    # The spec's status codes, except for the operations in STATUS_CODES_UNDOCUMENTED.
    "status_code_conformance",
)
#: Checks that do not run: each one reports the real server's behaviour as a failure.
CHECKS_OFF = (
    # "Invalid by the spec" is routinely valid to the real server: web/params.go parses paging
    # and flags leniently (per_page=null becomes 60, include_deleted=11507 is false,
    # set_online=<garbage> is true) and Go's JSON decoder ignores unknown body fields.
    "negative_data_rejection",
    # "Valid by the spec" includes ids that name nothing, empty emoji names, `PostPatch.props` as
    # a string and perPage=730193; the real server answers 400/404 to all of them.
    "positive_data_acceptance",
    # The spec declares no required headers beyond the token (covered by ignored_auth).
    "missing_required_header",
    # Other methods on a known path get gorilla mux's bare 405: no body, no `Allow` header.
    "unsupported_method",
    "allow_header_conformance",
    # The stateful phase follows links schemathesis infers (the 2023 spec declares none), and
    # the pinned ids below override the ids a link would carry (e.g. DeletePost always targets
    # the same post, so "created, then 404" is our pin, not the emulator).
    "use_after_free",
    "ensure_resource_availability",
    # Needs a second identity per operation, which a single run with one token has not.
    "object_level_authorization",
)

#: Operations whose real status codes the spec does not list (status_code_conformance is off
#: for them), with the reason.
STATUS_CODES_UNDOCUMENTED = {
    "SaveReaction": "answers 200 (not 201), 401 without a session and 404 for an unknown emoji",
    "DeletePost": "answers 404 once the post is gone (app.post.get.app_error)",
}


async def _seed_objects(url: str, bot_token: str, bot_id: str, human_id: str) -> dict[str, str]:
    """Make the DM, posts, reaction and file the fuzzed requests point at, as a client would."""
    headers = {"Authorization": f"Bearer {bot_token}"}
    async with httpx.AsyncClient(base_url=url + "/api/v4", headers=headers, timeout=10) as http:

        async def call(method: str, path: str, **kwargs: Any) -> Any:
            response = await http.request(method, path, **kwargs)
            assert response.status_code < 300, (method, path, response.status_code, response.text)
            return response.json()

        dm = await call("POST", "/channels/direct", json=[bot_id, human_id])
        channel = dm["id"]

        async def post(message: str, **extra: Any) -> str:
            body = {"channel_id": channel, "message": message, **extra}
            return str((await call("POST", "/posts", json=body))["id"])

        root = await post("conformance root")
        await post("conformance reply", root_id=root)
        patch_target = await post("to be patched")
        doomed = await post("to be deleted")
        reaction = {"user_id": bot_id, "post_id": root, "emoji_name": "white_check_mark"}
        await call("POST", "/reactions", json=reaction)
        uploaded = await call(
            "POST",
            "/files",
            data={"channel_id": channel},
            files={"files": ("notes.txt", b"conformance\n", "text/plain")},
        )
        file_id = uploaded["file_infos"][0]["id"]
        file_post = await post("with a file", file_ids=[file_id])
    return {
        "channel": channel,
        "root": root,
        "patch_target": patch_target,
        "doomed": doomed,
        "file": file_id,
        "file_post": file_post,
    }


#: Corrections to the 2023 spec where it contradicts the real server (and the spec's own
#: prose), applied to a copy before the run: (what the spec says, the fix, why).
ERRATA = (
    (
        "        useAutomaticTimezone:\n          type: boolean\n",
        "        useAutomaticTimezone:\n          type: string\n",
        # model.User.Timezone is a StringMap: the server writes "true"/"false" strings, as the
        # field's own description says.
        "Timezone.useAutomaticTimezone is a string",
    ),
)


def _corrected_spec(spec: Path, folder: Path) -> Path:
    text = spec.read_text()
    for wrong, right, why in ERRATA:
        assert text.count(wrong) == 1, f"erratum no longer applies ({why}): {wrong!r}"
        text = text.replace(wrong, right)
    corrected = folder / spec.name
    corrected.write_text(text)
    return corrected


def _toml_value(value: object) -> str:
    return json.dumps(value)  # JSON strings and lists are valid TOML values


def _toml_inline(value: object) -> str:
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_value(k)} = {_toml_inline(v)}" for k, v in value.items())
        return f"{{ {items} }}"
    return _toml_value(value)


def _config(objects: dict[str, str], *, bot_id: str, human_id: str, human_username: str) -> str:
    """A schemathesis.toml pinning every id-like parameter to a real object."""
    pins: dict[str, dict[str, object]] = {
        "GetUser": {"path.user_id": human_id},
        "GetUserByUsername": {"path.username": human_username},
        "GetChannel": {"path.channel_id": objects["channel"]},
        "GetPostsForChannel": {"path.channel_id": objects["channel"]},
        "CreatePost": {"body.channel_id": objects["channel"]},
        "GetPost": {"path.post_id": objects["root"]},
        "PatchPost": {"path.post_id": objects["patch_target"]},
        "DeletePost": {"path.post_id": objects["doomed"]},
        "GetPostThread": {"path.post_id": objects["root"]},
        "SaveReaction": {"body.user_id": bot_id, "body.post_id": objects["root"]},
        "GetReactions": {"path.post_id": objects["root"]},
        "DeleteReaction": {
            "path.user_id": bot_id,
            "path.post_id": objects["root"],
            "path.emoji_name": "white_check_mark",
        },
        "UploadFile": {"body.channel_id": objects["channel"]},
        "GetFileInfo": {"path.file_id": objects["file"]},
        "GetFileInfosForPost": {"path.post_id": objects["file_post"]},
    }
    # POST /channels/direct takes a bare JSON array: draw its items from the two real users.
    pins["CreateDirectChannel"] = {"body.[*]": {"dictionary": "dm_members"}}
    lines = [f"dictionaries.dm_members.values = {_toml_value([bot_id, human_id])}", ""]
    lines += ["[checks]"]
    lines += [f"{name}.enabled = true" for name in CHECKS_ON]
    lines += [f"{name}.enabled = false" for name in CHECKS_OFF]
    lines.append("")
    for operation in OPERATIONS:
        settings = []
        if operation in STATUS_CODES_UNDOCUMENTED:
            settings.append(f"# {STATUS_CODES_UNDOCUMENTED[operation]}")
            settings.append("checks.status_code_conformance.enabled = false")
        if params := pins.get(operation):
            inline = ", ".join(f"{_toml_value(k)} = {_toml_inline(v)}" for k, v in params.items())
            settings.append(f"parameters = {{ {inline} }}")
        if settings:  # schemathesis refuses a block that only filters
            lines += ["[[operations]]", f"include-operation-id = {_toml_value(operation)}"]
            lines += [*settings, ""]
    return "\n".join(lines)


def _label_pattern(label: str) -> re.Pattern[str]:
    """``GET /api/v4/posts/{post_id}`` -> a regex matching recorded ``GET /api/v4/posts/abc``."""
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(label)))


def _summary(stdout: str) -> tuple[int, int]:
    """(generated, passed) from the 'Test cases:' block of the run summary."""
    match = re.search(r"Test cases:\s*\n\s*(\d+) generated, (\d+) passed", stdout)
    assert match, f"no test-case summary in schemathesis output:\n{stdout[-4000:]}"
    return int(match[1]), int(match[2])


async def test_emulator_conforms_to_openapi_spec(
    schemathesis_bin: Path, openapi_spec: Path, tmp_path: Path
) -> None:
    async with open_mattermost_emulator() as mm:
        bot = mm.create_user("conformance-bot", bot=True)
        human = mm.create_user("alice")
        objects = await _seed_objects(mm.url, bot.token, bot.id, human.id)
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            _config(objects, bot_id=bot.id, human_id=human.id, human_username=human.username)
        )
        junit = tmp_path / "junit.xml"
        argv = [str(schemathesis_bin), "--config-file", str(config), "--no-color", "run"]
        argv += [str(_corrected_spec(openapi_spec, tmp_path)), "--url", mm.url]
        argv += ["--header", f"Authorization: Bearer {bot.token}"]
        for operation in OPERATIONS:
            argv += ["--include-operation-id", operation]
        argv += ["--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)]
        argv += ["--generation-database", "none", "--request-timeout", "5", "--workers", "4"]
        argv += ["--report", "junit", "--report-junit-path", str(junit)]
        mark = len(mm.emulator.requests)
        with trio.fail_after(DEADLINE):
            done = await trio.run_process(
                argv, capture_stdout=True, capture_stderr=True, check=False, cwd=tmp_path
            )
        stdout = done.stdout.decode(errors="replace")
        assert done.returncode == 0, f"schemathesis failed:\n{stdout[-12000:]}\n{done.stderr!r}"

        generated, passed = _summary(stdout)
        assert generated == passed > len(OPERATIONS) * 2, stdout[-4000:]
        tested = {case.get("name", "") for case in ET.parse(junit).getroot().iter("testcase")}
        untested = [label for label in OPERATIONS.values() if label not in tested]
        assert not untested, (untested, sorted(tested))

        # The run really went through the emulator's handlers: every operation got at least
        # one success, so the pins worked and not only the error paths were exercised.
        answered = mm.emulator.requests[mark:]
        unsuccessful = [
            label
            for label in OPERATIONS.values()
            if not any(
                200 <= r.status < 300 and _label_pattern(label).fullmatch(f"{r.method} {r.path}")
                for r in answered
            )
        ]
        assert not unsuccessful, unsuccessful
