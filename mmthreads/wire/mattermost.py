"""Mattermost wire types: the subset of REST v4 and WebSocket payloads mmthreads reads.

These are *their* types: unknown fields are ignored, because the server adds fields between
releases.  Only the fields the bridge uses are declared, each with a default where the server
may leave it out.  See ``shared/reference/mattermost-api.md`` §1 (REST) and §3 (WebSocket).

WebSocket frames decode in two phases: first :class:`WsEnvelope`, whose ``data`` stays raw,
then the per-kind payload (:class:`HelloData`, :class:`PostEventData`,
:class:`ReactionEventData`).  ``posted``, ``post_edited`` and ``post_deleted`` carry the post,
and ``reaction_*`` the reaction, as a JSON *string*, so those decode a second time
(:func:`decode_post`, :func:`decode_reaction`).
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "AppError",
    "Broadcast",
    "Channel",
    "ClientConfig",
    "FileInfo",
    "FileUpload",
    "HelloData",
    "OldClientConfig",
    "Post",
    "PostEventData",
    "PostList",
    "Reaction",
    "ReactionEventData",
    "User",
    "WsEnvelope",
    "decode_post",
    "decode_reaction",
]


class Post(msgspec.Struct, frozen=True, kw_only=True):
    """A Mattermost post as REST returns it and as the ``posted`` event carries it."""

    id: str
    channel_id: str
    user_id: str
    message: str = ""
    root_id: str = ""
    type: str = ""
    create_at: int = 0
    update_at: int = 0
    edit_at: int = 0
    delete_at: int = 0
    props: dict[str, object] = msgspec.field(default_factory=dict)
    file_ids: list[str] = msgspec.field(default_factory=list)


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A user or bot account (``GET /users/...``)."""

    id: str
    username: str
    first_name: str = ""
    last_name: str = ""
    nickname: str = ""
    is_bot: bool = False
    delete_at: int = 0
    locale: str = ""


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    """A channel; a direct channel has ``type == "D"`` and ``name == "<idA>__<idB>"``."""

    id: str
    type: str = ""
    name: str = ""
    display_name: str = ""
    team_id: str = ""
    create_at: int = 0
    update_at: int = 0
    delete_at: int = 0
    last_post_at: int = 0
    creator_id: str = ""


class Reaction(msgspec.Struct, frozen=True, kw_only=True):
    """An emoji reaction of one user on one post."""

    user_id: str
    post_id: str
    emoji_name: str
    create_at: int = 0
    update_at: int = 0
    delete_at: int = 0
    channel_id: str = ""


class FileInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded file's metadata; ``post_id`` stays "" until a post attaches it."""

    id: str
    name: str = ""
    extension: str = ""
    size: int = 0
    mime_type: str = ""
    user_id: str = ""
    channel_id: str = ""
    post_id: str = ""
    create_at: int = 0
    delete_at: int = 0


class FileUpload(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ``POST /files``."""

    file_infos: list[FileInfo] = msgspec.field(default_factory=list)
    client_ids: list[str] = msgspec.field(default_factory=list)


class PostList(msgspec.Struct, frozen=True, kw_only=True):
    """A page of posts: ``order`` lists the page's ids, ``posts`` may hold a few more (roots)."""

    order: list[str] = msgspec.field(default_factory=list)
    posts: dict[str, Post] = msgspec.field(default_factory=dict)
    next_post_id: str = ""
    prev_post_id: str = ""
    has_next: bool = False

    def in_order(self) -> list[Post]:
        """Every post of the list (``order`` and extra roots), oldest first.

        The server's ``order`` depends on the query (newest first for channel pages), so the
        posts are sorted by ``create_at``, then id, as the reference advises (§1.6).
        """
        return sorted(self.posts.values(), key=lambda post: (post.create_at, post.id))


class AppError(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of every error an API handler returns (§2.2)."""

    id: str = ""
    message: str = ""
    detailed_error: str = ""
    request_id: str = ""
    status_code: int = 0


class OldClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /config/client?format=old``: every value is a string, keys are PascalCase."""

    max_post_size: str = msgspec.field(name="MaxPostSize", default="")
    max_file_size: str = msgspec.field(name="MaxFileSize", default="")
    version: str = msgspec.field(name="Version", default="")
    site_url: str = msgspec.field(name="SiteURL", default="")
    enable_file_attachments: str = msgspec.field(name="EnableFileAttachments", default="true")


#: What the server allows when its configuration does not say (§1.12, §1.9).
DEFAULT_MAX_POST_SIZE: Final = 16383
DEFAULT_MAX_FILE_SIZE: Final = 100 * 1024 * 1024


def _int_or(text: str, default: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return value if value > 0 else default


class ClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The server limits the bridge needs, as numbers.

    Attributes:
        max_post_size: The longest message, in runes (Unicode code points).
        max_file_size: The largest upload, in bytes.
        version: The server version string.
        site_url: The public URL for permalinks ("" if not configured).
        file_attachments: Whether uploads are enabled.
    """

    max_post_size: int = DEFAULT_MAX_POST_SIZE
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    version: str = ""
    site_url: str = ""
    file_attachments: bool = True

    @classmethod
    def from_old(cls, old: OldClientConfig) -> ClientConfig:
        """Read the string-valued old format; unreadable numbers fall back to the defaults."""
        return cls(
            max_post_size=_int_or(old.max_post_size, DEFAULT_MAX_POST_SIZE),
            max_file_size=_int_or(old.max_file_size, DEFAULT_MAX_FILE_SIZE),
            version=old.version,
            site_url=old.site_url,
            file_attachments=old.enable_file_attachments.lower() != "false",
        )


# -- WebSocket ------------------------------------------------------------------------------


class Broadcast(msgspec.Struct, frozen=True, kw_only=True):
    """Who an event was sent to (§3.2)."""

    omit_users: dict[str, bool] | None = None
    user_id: str = ""
    channel_id: str = ""
    team_id: str = ""
    connection_id: str = ""
    omit_connection_id: str = ""


class WsEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """Any text frame the server sends, first phase: ``data`` is kept raw.

    An *event* has ``event``, ``data``, ``broadcast`` and ``seq`` (counted per connection from
    0 with ``hello``).  A *reply* to one of our actions has no ``event`` and no ``seq`` but
    ``status`` (``"OK"`` or ``"FAIL"``), ``seq_reply`` and, on failure, ``error``.
    """

    event: str = ""
    data: msgspec.Raw = msgspec.Raw()
    broadcast: Broadcast | None = None
    seq: int | None = None
    status: str = ""
    seq_reply: int | None = None
    error: AppError | None = None

    @property
    def is_reply(self) -> bool:
        """Whether this is a reply to a client action rather than an event."""
        return not self.event and self.seq_reply is not None


class HelloData(msgspec.Struct, frozen=True, kw_only=True):
    """``hello``: the connection is registered; ``connection_id`` is what a resume names."""

    connection_id: str
    server_version: str = ""


class PostEventData(msgspec.Struct, frozen=True, kw_only=True):
    """``posted``, ``post_edited`` and ``post_deleted``: ``post`` is the Post as JSON text."""

    post: str
    channel_type: str = ""
    channel_name: str = ""
    sender_name: str = ""
    team_id: str = ""
    #: A JSON-string array holding the receiver's id when it is mentioned ("" otherwise).
    mentions: str = ""


class ReactionEventData(msgspec.Struct, frozen=True, kw_only=True):
    """``reaction_added`` and ``reaction_removed``: ``reaction`` is the Reaction as JSON text."""

    reaction: str


_POST_DECODER: Final = msgspec.json.Decoder(Post)
_REACTION_DECODER: Final = msgspec.json.Decoder(Reaction)


def decode_post(text: str) -> Post:
    """Decode the double-encoded ``post`` of a post event.

    Raises:
        msgspec.DecodeError: The text is not a JSON Post (``ValidationError`` included).
    """
    return _POST_DECODER.decode(text)


def decode_reaction(text: str) -> Reaction:
    """Decode the double-encoded ``reaction`` of a reaction event.

    Raises:
        msgspec.DecodeError: The text is not a JSON Reaction (``ValidationError`` included).
    """
    return _REACTION_DECODER.decode(text)
