"""The Mattermost REST v4 client: one typed method per call the bridge makes.

:class:`MattermostClient` turns arguments into requests and answers into wire Structs
(``mmthreads.wire.mattermost``).  Retries, rate limits and the mapping of failures to
``mmthreads.errors`` live in the request loop underneath (``mattermost_http``), so every
method raises only ``ChatError`` subclasses: ``ChatAuthError`` (401/403), ``ChatNotFound``
(404), ``ChatRequestError`` (other refusals, or an answer that is not the JSON expected),
``ChatUnavailable`` and ``ChatRateLimited`` (the server stayed unreachable or kept refusing).

The token is never in the client's repr, a log line or an exception message.
"""

from __future__ import annotations

import random as _random
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import quote

import msgspec

from mmthreads.adapters.mattermost_http import (
    DEFAULT_REST_POLICY,
    BodyTooLarge,
    RateLimitStatus,
    RequestLoop,
)
from mmthreads.errors import ChatFileTooLarge, ChatRequestError
from mmthreads.wire.mattermost import (
    Channel,
    ClientConfig,
    FileInfo,
    FileUpload,
    OldClientConfig,
    Post,
    PostList,
    Reaction,
    User,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

    import httpx

    from mmthreads.core.backoff import RetryPolicy

__all__ = [
    "DEFAULT_MAX_DOWNLOAD",
    "DEFAULT_REST_POLICY",
    "MattermostClient",
    "RateLimitStatus",
]

T = TypeVar("T")

#: The most a file download may be unless the caller says otherwise (the server's default
#: upload limit, §1.9).
DEFAULT_MAX_DOWNLOAD: Final = 100 * 1024 * 1024
#: A thread page: the server refuses more than 200 (§1.6).
_THREAD_PAGE: Final = 200

_USER: Final = msgspec.json.Decoder(User)
_CHANNEL: Final = msgspec.json.Decoder(Channel)
_POST: Final = msgspec.json.Decoder(Post)
_POST_LIST: Final = msgspec.json.Decoder(PostList)
_REACTION: Final = msgspec.json.Decoder(Reaction)
_FILE_INFO: Final = msgspec.json.Decoder(FileInfo)
_UPLOAD: Final = msgspec.json.Decoder(FileUpload)
_OLD_CONFIG: Final = msgspec.json.Decoder(OldClientConfig)


def _q(segment: str) -> str:
    # Ids are [a-z0-9], but a name from a user must never change the path's shape.
    return quote(segment, safe="")


class MattermostClient:
    """A bot's REST client for Mattermost.

    The constructor takes the options of :class:`~mmthreads.adapters.mattermost_http.RequestLoop`
    (URL with or without ``/api/v4``, token, transport, timeouts, retry and 429 policy), which
    sends every request; this class turns the API into typed methods.

    Raises:
        ConfigError: ``url`` is not an http(s) URL.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        retry_policy: RetryPolicy = DEFAULT_REST_POLICY,
        rate_limit_retries: int = 5,
        max_retry_after: float = 300.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._loop = RequestLoop(
            url,
            token,
            transport=transport,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry_policy=retry_policy,
            rate_limit_retries=rate_limit_retries,
            max_retry_after=max_retry_after,
            random=random,
        )
        self._call = self._loop.call

    def __repr__(self) -> str:
        return f"<MattermostClient {self._loop.api_url}>"

    async def __aenter__(self) -> MattermostClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._loop.aclose()

    @property
    def api_url(self) -> str:
        """The normalised ``…/api/v4`` base URL."""
        return self._loop.api_url

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The latest rate-limit headers seen, or None if the server sent none."""
        return self._loop.rate_limit

    # -- users and channels -----------------------------------------------------------------

    async def get_me(self) -> User:
        """The bot's own account (``GET /users/me``)."""
        return _decode(_USER, await self._call("GET", "/users/me"), "GET /users/me")

    async def get_user(self, user_id: str) -> User:
        """A user by id."""
        path = f"/users/{_q(user_id)}"
        return _decode(_USER, await self._call("GET", path), f"GET {path}")

    async def get_user_by_username(self, username: str) -> User:
        """A user by username (without the ``@``)."""
        path = f"/users/username/{_q(username)}"
        return _decode(_USER, await self._call("GET", path), f"GET {path}")

    async def create_direct_channel(self, user_a: str, user_b: str) -> Channel:
        """Find or create the DM between two users (one of them must be the bot)."""
        body = await self._call("POST", "/channels/direct", json=[user_a, user_b], ok=(200, 201))
        return _decode(_CHANNEL, body, "POST /channels/direct")

    async def get_channel(self, channel_id: str) -> Channel:
        """A channel by id."""
        path = f"/channels/{_q(channel_id)}"
        return _decode(_CHANNEL, await self._call("GET", path), f"GET {path}")

    # -- posts ------------------------------------------------------------------------------

    async def create_post(
        self,
        channel_id: str,
        message: str,
        *,
        root_id: str = "",
        props: Mapping[str, object] | None = None,
        file_ids: tuple[str, ...] | list[str] = (),
    ) -> Post:
        """Create a post, or a reply in the thread of ``root_id``.

        Args:
            channel_id: Where to post.
            message: The text (at most ``ClientConfig.max_post_size`` runes).
            root_id: The thread's root post ("" for a new root).
            props: Post properties (e.g. the session id on a thread root).
            file_ids: Uploaded files to attach.
        """
        body: dict[str, object] = {"channel_id": channel_id, "message": message}
        if root_id:
            body["root_id"] = root_id
        if props:
            body["props"] = dict(props)
        if file_ids:
            body["file_ids"] = list(file_ids)
        raw = await self._call("POST", "/posts", json=body, ok=(200, 201), idempotent=False)
        return _decode(_POST, raw, "POST /posts")

    async def patch_post(
        self,
        post_id: str,
        *,
        message: str | None = None,
        props: Mapping[str, object] | None = None,
    ) -> Post:
        """Change a post's message and/or props; ``props`` replaces the whole map (§1.4)."""
        body: dict[str, object] = {}
        if message is not None:
            body["message"] = message
        if props is not None:
            body["props"] = dict(props)
        path = f"/posts/{_q(post_id)}/patch"
        return _decode(_POST, await self._call("PUT", path, json=body), f"PUT {path}")

    async def get_post(self, post_id: str) -> Post:
        """A post by id."""
        path = f"/posts/{_q(post_id)}"
        return _decode(_POST, await self._call("GET", path), f"GET {path}")

    async def delete_post(self, post_id: str) -> None:
        """Delete a post (a root takes its replies along)."""
        await self._call("DELETE", f"/posts/{_q(post_id)}")

    async def get_thread(self, post_id: str) -> PostList:
        """Every post of the thread containing ``post_id``, oldest first, fetched page by page."""
        path = f"/posts/{_q(post_id)}/thread"
        params = {
            "perPage": str(_THREAD_PAGE),
            "direction": "down",
            "skipFetchThreads": "false",
            "collapsedThreads": "false",
            "collapsedThreadsExtended": "false",
        }
        posts: dict[str, Post] = {}
        cursor: dict[str, str] = {}
        while True:
            raw = await self._call("GET", path, params=params | cursor)
            page = _decode(_POST_LIST, raw, f"GET {path}")
            posts.update(page.posts)
            last = page.posts.get(page.order[-1]) if page.order else None
            if not page.has_next or last is None:
                break
            following = {"fromPost": last.id, "fromCreateAt": str(last.create_at)}
            if following == cursor:
                break  # a server that does not move its cursor would loop forever
            cursor = following
        ordered = sorted(posts.values(), key=lambda post: (post.create_at, post.id))
        return PostList(order=[post.id for post in ordered], posts=posts)

    async def get_posts_since(self, channel_id: str, since_ms: int) -> PostList:
        """Posts of a channel changed after ``since_ms`` (created, edited or deleted; §1.7)."""
        path = f"/channels/{_q(channel_id)}/posts"
        raw = await self._call("GET", path, params={"since": str(since_ms)})
        return _decode(_POST_LIST, raw, f"GET {path}")

    async def get_channel_posts(
        self, channel_id: str, page: int = 0, per_page: int = 60
    ) -> PostList:
        """One page of a channel's posts, newest first (``per_page`` at most 200)."""
        path = f"/channels/{_q(channel_id)}/posts"
        params = {"page": str(page), "per_page": str(per_page)}
        return _decode(_POST_LIST, await self._call("GET", path, params=params), f"GET {path}")

    # -- reactions, files, typing, config -------------------------------------------------

    async def add_reaction(self, user_id: str, post_id: str, emoji_name: str) -> Reaction:
        """React to a post as ``user_id`` (the bot itself)."""
        body = {"user_id": user_id, "post_id": post_id, "emoji_name": emoji_name}
        raw = await self._call("POST", "/reactions", json=body, ok=(200, 201))
        return _decode(_REACTION, raw, "POST /reactions")

    async def remove_reaction(self, user_id: str, post_id: str, emoji_name: str) -> None:
        """Take a reaction back."""
        path = f"/users/{_q(user_id)}/posts/{_q(post_id)}/reactions/{_q(emoji_name)}"
        await self._call("DELETE", path)

    async def upload_file(self, channel_id: str, filename: str, data: bytes) -> FileInfo:
        """Upload a file to attach to a post in ``channel_id`` (multipart, ``channel_id`` first).

        A repeated upload after a lost answer only leaves an unattached file behind, so
        uploads are retried like reads.
        """
        files = {"files": (filename, data, "application/octet-stream")}
        raw = await self._call(
            "POST", "/files", form={"channel_id": channel_id}, files=files, ok=(200, 201)
        )
        upload = _decode(_UPLOAD, raw, "POST /files")
        if not upload.file_infos:
            raise ChatRequestError(201, "", "upload answered no file", endpoint="POST /files")
        return upload.file_infos[0]

    async def get_file(self, file_id: str, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD) -> bytes:
        """Download a file's bytes.

        Raises:
            ChatFileTooLarge: The file is bigger than ``max_bytes``; nothing more is read.
        """
        try:
            return await self._call("GET", f"/files/{_q(file_id)}", max_bytes=max_bytes)
        except BodyTooLarge:
            raise ChatFileTooLarge(file_id, max_bytes) from None

    async def get_file_info(self, file_id: str) -> FileInfo:
        """A file's metadata."""
        path = f"/files/{_q(file_id)}/info"
        return _decode(_FILE_INFO, await self._call("GET", path), f"GET {path}")

    async def client_config(self) -> ClientConfig:
        """The server's limits (``GET /config/client?format=old``)."""
        raw = await self._call("GET", "/config/client", params={"format": "old"})
        return ClientConfig.from_old(_decode(_OLD_CONFIG, raw, "GET /config/client"))

    async def typing(self, channel_id: str, parent_id: str = "") -> None:
        """Show "bot is typing…" in a channel or thread for a few seconds."""
        body = {"channel_id": channel_id, "parent_id": parent_id}
        await self._call("POST", "/users/me/typing", json=body)


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, endpoint: str) -> T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ChatRequestError(0, "", f"unreadable answer: {exc}", endpoint=endpoint) from None
