"""The REST v4 handlers of the emulator (registered into ``rest.ROUTES`` on import).

Each handler parses what the server's ``api4`` handler parses, calls the sans-IO state and
renders the result with the server's status codes: 201 for created posts, DM channels and
uploads; 200 for everything else, reactions included.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Final

import msgspec

from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.files import is_inline_safe
from mmthreads.harness.mattermost.ids import is_valid_id
from mmthreads.harness.mattermost.multipart import MultipartError, parse_form_data
from mmthreads.harness.mattermost.posts import CreatePost, PostPatch, PostUpdate
from mmthreads.harness.mattermost.rest import (
    STATUS_OK,
    Context,
    Response,
    json_response,
    route,
)
from mmthreads.harness.mattermost.version import BUILD_NUMBER, CONFIG_HASH, VERSION

__all__: list[str] = []

_MAX_PER_PAGE: Final = 200


class _Reaction(msgspec.Struct, kw_only=True):
    user_id: str = ""
    post_id: str = ""
    emoji_name: str = ""


class _Typing(msgspec.Struct, kw_only=True):
    channel_id: str = ""
    parent_id: str = ""


def _user_id(ctx: Context, value: str) -> str:
    if value == "me":
        return ctx.actor
    if not is_valid_id(value):
        raise AppError.invalid_url_param("user_id")
    return value


def _int_arg(ctx: Context, name: str, default: int) -> int:
    raw = ctx.request.arg(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise AppError.invalid_param(name) from None


def _paging(ctx: Context) -> tuple[int, int]:
    # web/params.go: bad values fall back to the defaults; per_page is clamped to 200.
    try:
        page = max(0, int(ctx.request.arg("page", "0")))
    except ValueError:
        page = 0
    try:
        per_page = int(ctx.request.arg("per_page") or ctx.request.arg("pageSize") or "60")
    except ValueError:
        per_page = 60
    if per_page < 0:
        per_page = 60
    return page, min(per_page, _MAX_PER_PAGE)


def _etag(ctx: Context, tag: str, response: Response) -> Response:
    if ctx.request.headers.get("if-none-match") == tag:
        return Response(status=304, headers=[("Etag", tag)])
    response.headers.append(("Etag", tag))
    return response


# -- users ------------------------------------------------------------------------------


@route("GET", "/users/username/{username}")
def get_user_by_username(ctx: Context, p: dict[str, str]) -> Response:
    return json_response(ctx.state.user_by_username(p["username"], actor=ctx.actor))


@route("POST", "/users/ids")
def get_users_by_ids(ctx: Context, p: dict[str, str]) -> Response:
    ids = ctx.decode(list[str], "user_ids")
    return json_response(ctx.state.users_by_ids(ids, actor=ctx.actor))


@route("GET", "/users/{user_id}")
def get_user(ctx: Context, p: dict[str, str]) -> Response:
    return json_response(ctx.state.user_view(_user_id(ctx, p["user_id"]), actor=ctx.actor))


@route("GET", "/users/{user_id}/channels")
def get_all_channels(ctx: Context, p: dict[str, str]) -> Response:
    if _user_id(ctx, p["user_id"]) != ctx.actor:
        raise AppError.forbidden()
    return json_response(ctx.state.channels_of(ctx.actor))


@route("POST", "/users/{user_id}/typing")
def publish_typing(ctx: Context, p: dict[str, str]) -> Response:
    if _user_id(ctx, p["user_id"]) != ctx.actor:
        raise AppError.forbidden()
    body = ctx.decode(_Typing, "typing_request")
    ctx.state.publish_typing(ctx.actor, body.channel_id, body.parent_id)
    return json_response(STATUS_OK)


# -- channels ---------------------------------------------------------------------------


@route("POST", "/channels/direct")
def create_direct_channel(ctx: Context, p: dict[str, str]) -> Response:
    ids = ctx.decode(list[str], "user_ids")
    return json_response(ctx.state.direct_channel(ctx.actor, ids), 201)


@route("GET", "/channels/{channel_id}")
def get_channel(ctx: Context, p: dict[str, str]) -> Response:
    return json_response(ctx.state.channel_for(ctx.actor, p["channel_id"]))


@route("GET", "/channels/{channel_id}/posts")
def get_posts_for_channel(ctx: Context, p: dict[str, str]) -> Response:
    page, per_page = _paging(ctx)
    since = _int_arg(ctx, "since", 0)
    result = ctx.state.channel_posts(
        ctx.actor,
        p["channel_id"],
        page=page,
        per_page=per_page,
        since=since,
        before=ctx.request.arg("before"),
        after=ctx.request.arg("after"),
        include_deleted=ctx.request.arg("include_deleted") == "true",
    )
    return json_response(result)


# -- posts ------------------------------------------------------------------------------


@route("POST", "/posts")
def create_post(ctx: Context, p: dict[str, str]) -> Response:
    body = ctx.decode(CreatePost, "post")
    set_online = ctx.request.arg("set_online", "true").lower() not in ("false", "0", "f")
    return json_response(ctx.state.create_post(ctx.actor, body, set_online=set_online), 201)


@route("GET", "/posts/{post_id}")
def get_post(ctx: Context, p: dict[str, str]) -> Response:
    if ctx.request.arg("include_deleted") == "true":
        raise AppError.forbidden()
    post = ctx.state.get_post(ctx.actor, p["post_id"])
    return _etag(ctx, f"{VERSION}.{post.id}.{post.update_at}", json_response(post))


@route("PUT", "/posts/{post_id}/patch")
def patch_post(ctx: Context, p: dict[str, str]) -> Response:
    patch = ctx.decode(PostPatch, "post")
    return json_response(ctx.state.patch_post(ctx.actor, p["post_id"], patch))


@route("PUT", "/posts/{post_id}")
def update_post(ctx: Context, p: dict[str, str]) -> Response:
    body = ctx.decode(PostUpdate, "post")
    return json_response(ctx.state.update_post(ctx.actor, p["post_id"], body))


@route("DELETE", "/posts/{post_id}")
def delete_post(ctx: Context, p: dict[str, str]) -> Response:
    if ctx.request.arg("permanent") == "true":
        raise AppError("api.post.delete_post.not_enabled.app_error", 501)
    ctx.state.delete_post(ctx.actor, p["post_id"])
    return json_response(STATUS_OK)


@route("GET", "/posts/{post_id}/thread")
def get_post_thread(ctx: Context, p: dict[str, str]) -> Response:
    result = ctx.state.thread(
        ctx.actor,
        p["post_id"],
        per_page=_int_arg(ctx, "perPage", 0),
        from_post=ctx.request.arg("fromPost"),
        from_create_at=_int_arg(ctx, "fromCreateAt", 0),
        from_update_at=_int_arg(ctx, "fromUpdateAt", 0),
        updates_only=ctx.request.arg("updatesOnly") == "true",
        direction=ctx.request.arg("direction"),
    )
    latest = max(result.posts.values(), key=lambda post: post.update_at)
    return _etag(ctx, f"{VERSION}.{latest.id}.{latest.update_at}", json_response(result))


@route("GET", "/posts/{post_id}/files/info")
def get_file_infos_for_post(ctx: Context, p: dict[str, str]) -> Response:
    return json_response(ctx.state.file_infos_for_post(ctx.actor, p["post_id"]))


# -- reactions --------------------------------------------------------------------------


@route("POST", "/reactions")
def save_reaction(ctx: Context, p: dict[str, str]) -> Response:
    body = ctx.decode(_Reaction, "reaction")
    reaction = ctx.state.save_reaction(ctx.actor, body.user_id, body.post_id, body.emoji_name)
    return json_response(reaction)


@route("DELETE", "/users/{user_id}/posts/{post_id}/reactions/{emoji_name}")
def delete_reaction(ctx: Context, p: dict[str, str]) -> Response:
    user_id = ctx.actor if p["user_id"] == "me" else p["user_id"]
    emoji_name = urllib.parse.unquote(p["emoji_name"])
    ctx.state.delete_reaction(ctx.actor, user_id, p["post_id"], emoji_name)
    return json_response(STATUS_OK)


@route("GET", "/posts/{post_id}/reactions")
def get_reactions(ctx: Context, p: dict[str, str]) -> Response:
    return json_response(ctx.state.reactions_for(ctx.actor, p["post_id"]))


# -- files ------------------------------------------------------------------------------


@route("POST", "/files")
def upload_file(ctx: Context, p: dict[str, str]) -> Response:
    request = ctx.request
    if not request.body:
        raise AppError("api.file.upload_file.read_request.app_error", 400)
    content_type = request.headers.get("content-type", "")
    uploads: list[tuple[str, bytes]] = []
    client_ids: list[str] = []
    if content_type.lower().startswith("multipart/"):
        # The real server streams when channel_id comes first and falls back to a buffered
        # parse otherwise; both accept the same fields, so one buffered parse serves both.
        channel_id = ""
        try:
            parts = parse_form_data(content_type, request.body)
        except MultipartError:
            raise AppError.invalid_param("multipart") from None
        for part in parts:
            if part.filename is not None:
                if part.name != "files":
                    raise AppError.invalid_param("files")
                uploads.append((part.filename, part.data))
            elif part.name == "channel_id":
                channel_id = channel_id or part.data.decode("utf-8", "replace")
            elif part.name == "client_ids":
                client_ids.append(part.data.decode("utf-8", "replace"))
            else:
                raise AppError.invalid_param(part.name)
        if client_ids and len(client_ids) != len(uploads):
            raise AppError.invalid_param("client_ids")
    else:
        channel_id = request.arg("channel_id")
        filename = request.arg("filename")
        if not filename:
            raise AppError.invalid_param("filename")
        uploads.append((filename, request.body))
        if request.arg("client_id"):
            client_ids.append(request.arg("client_id"))
    if not is_valid_id(channel_id):
        raise AppError.invalid_param("channel_id")
    if not uploads:
        raise AppError.invalid_param("files")
    infos = [ctx.state.upload_file(ctx.actor, channel_id, n, d) for n, d in uploads]
    return json_response({"file_infos": infos, "client_ids": client_ids}, 201)


@route("GET", "/files/{file_id}")
def get_file(ctx: Context, p: dict[str, str]) -> Response:
    info, data = ctx.state.file_bytes(ctx.actor, p["file_id"])
    inline = is_inline_safe(info.mime_type) and ctx.request.arg("download") not in ("1", "true")
    quoted = urllib.parse.quote(info.name)
    kind = "inline" if inline else "attachment"
    disposition = f"{kind};filename=\"{info.name}\"; filename*=UTF-8''{quoted}"
    return Response(
        status=200,
        headers=[
            ("Content-Type", info.mime_type),
            ("Content-Disposition", disposition),
            ("Cache-Control", "private, no-cache"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", "Frame-ancestors 'none'"),
        ],
        body=data,
    )


@route("GET", "/files/{file_id}/info")
def get_file_info(ctx: Context, p: dict[str, str]) -> Response:
    return json_response(ctx.state.file_info(ctx.actor, p["file_id"]))


# -- system -----------------------------------------------------------------------------


@route("GET", "/config/client", auth=False)
def get_client_config(ctx: Context, p: dict[str, str]) -> Response:
    if ctx.request.arg("format") != "old":
        raise AppError("api.config.client.old_format.app_error", 501)
    limits = ctx.state.limits
    config: dict[str, Any] = {
        "Version": VERSION,
        "BuildNumber": BUILD_NUMBER,
        "BuildHash": CONFIG_HASH,
        "BuildEnterpriseReady": "false",
        "SiteName": "Mattermost",
        "SiteURL": "",
        "DiagnosticsEnabled": "false",
        "MaxPostSize": str(limits.max_post_size),
        "MaxFileSize": str(limits.max_file_size),
        "EnableFileAttachments": "true",
        "EnableCustomEmoji": "true",
        "CollapsedThreads": "always_on",
        "PostEditTimeLimit": "-1",
        "ExperimentalEnablePostMetadata": "true",
        "UniqueEmojiReactionLimitPerPost": str(limits.unique_reactions_per_post),
        "EnableReliableWebSockets": "true",
    }
    return json_response(config)


@route("GET", "/system/ping", auth=False)
def ping(ctx: Context, p: dict[str, str]) -> Response:
    return json_response({"ActiveSearchBackend": "database", "status": "OK"})
