"""Wire types of the emulator: what it stores and what it writes, field for field.

Field order follows the Go structs in ``server/public/model`` because clients sometimes log or
diff raw JSON, and Go writes struct fields in declaration order (map keys sorted).  Fields that
Go tags ``omitempty`` use ``msgspec.UNSET`` so they vanish from the JSON exactly when Go would
drop them.  These types are mutable: they *are* the emulator's records.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "Account",
    "Broadcast",
    "Channel",
    "Envelope",
    "FileInfo",
    "Post",
    "PostList",
    "PostMetadata",
    "Reaction",
    "Timezone",
    "User",
    "WsResponse",
    "decode_post",
    "encode",
]


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A user or bot of the emulator with its access token (what tests and drills hold)."""

    id: str
    username: str
    token: str
    is_bot: bool = False


class Timezone(msgspec.Struct, kw_only=True, rename="camel"):
    """``User.timezone``: three strings, camelCase on the wire."""

    use_automatic_timezone: str = "true"
    automatic_timezone: str = ""
    manual_timezone: str = ""


class User(msgspec.Struct, kw_only=True):
    """``model.User`` as the API returns it (sanitized: no password or auth data)."""

    id: str
    create_at: int
    update_at: int
    delete_at: int = 0
    username: str
    auth_service: str = ""
    email: str = ""
    nickname: str = ""
    first_name: str = ""
    last_name: str = ""
    position: str = ""
    roles: str = "system_user"
    props: dict[str, str] = msgspec.field(default_factory=dict)
    notify_props: dict[str, str] | UnsetType = UNSET
    last_password_update: int | UnsetType = UNSET
    last_picture_update: int = 0
    locale: str = "en"
    timezone: Timezone = msgspec.field(default_factory=Timezone)
    is_bot: bool | UnsetType = UNSET
    bot_description: str | UnsetType = UNSET
    disable_welcome_email: bool = False


class Channel(msgspec.Struct, kw_only=True):
    """``model.Channel``; the emulator only makes direct channels (``type == "D"``)."""

    id: str
    create_at: int
    update_at: int
    delete_at: int = 0
    team_id: str = ""
    type: str = "D"
    display_name: str = ""
    name: str
    header: str = ""
    purpose: str = ""
    last_post_at: int = 0
    total_msg_count: int = 0
    extra_update_at: int = 0
    creator_id: str = ""
    scheme_id: str | None = None
    props: dict[str, Any] | None = None
    group_constrained: bool | None = None
    shared: bool | None = None
    total_msg_count_root: int = 0
    policy_id: str | None = None
    last_root_post_at: int = 0


class FileInfo(msgspec.Struct, kw_only=True):
    """``model.FileInfo``: an uploaded file, attached to at most one post."""

    id: str
    user_id: str
    channel_id: str
    post_id: str = ""
    create_at: int
    update_at: int
    delete_at: int = 0
    name: str
    extension: str
    size: int
    mime_type: str
    width: int | UnsetType = UNSET
    height: int | UnsetType = UNSET
    has_preview_image: bool = False
    mini_preview: str | None = None
    remote_id: str = ""
    archived: bool = False


class Reaction(msgspec.Struct, kw_only=True):
    """``model.Reaction``."""

    user_id: str
    post_id: str
    emoji_name: str
    create_at: int
    update_at: int
    delete_at: int = 0
    remote_id: str = ""
    channel_id: str = ""


class PostMetadata(msgspec.Struct, kw_only=True):
    """``model.PostMetadata``: every field is ``omitempty``, so a plain post has ``{}``."""

    embeds: list[dict[str, Any]] | UnsetType = UNSET
    emojis: list[dict[str, Any]] | UnsetType = UNSET
    files: list[FileInfo] | UnsetType = UNSET
    images: dict[str, Any] | UnsetType = UNSET
    reactions: list[Reaction] | UnsetType = UNSET
    priority: dict[str, Any] | UnsetType = UNSET


class Post(msgspec.Struct, kw_only=True):
    """``model.Post`` (``server/public/model/post.go``), prepared for the client."""

    id: str
    create_at: int
    update_at: int
    edit_at: int = 0
    delete_at: int = 0
    is_pinned: bool = False
    user_id: str
    channel_id: str
    root_id: str = ""
    original_id: str = ""
    message: str = ""
    type: str = ""
    props: dict[str, Any] = msgspec.field(default_factory=dict)
    hashtags: str = ""
    file_ids: list[str] = msgspec.field(default_factory=list)
    pending_post_id: str = ""
    has_reactions: bool | UnsetType = UNSET
    reply_count: int = 0
    last_reply_at: int = 0
    participants: list[User] | None = None
    metadata: PostMetadata = msgspec.field(default_factory=PostMetadata)


class PostList(msgspec.Struct, kw_only=True):
    """``model.PostList``: ``order`` lists the page, ``posts`` may hold more (thread roots)."""

    order: list[str] = msgspec.field(default_factory=list)
    posts: dict[str, Post] = msgspec.field(default_factory=dict)
    next_post_id: str = ""
    prev_post_id: str = ""
    has_next: bool = False
    first_inaccessible_post_time: int = 0


class Broadcast(msgspec.Struct, kw_only=True):
    """``model.WebsocketBroadcast``: who an event is for (§3.2 routing rules)."""

    omit_users: dict[str, bool] | None = None
    user_id: str = ""
    channel_id: str = ""
    team_id: str = ""
    connection_id: str = ""
    omit_connection_id: str = ""
    contains_sanitized_data: bool | UnsetType = UNSET
    contains_sensitive_data: bool | UnsetType = UNSET


class Envelope(msgspec.Struct):
    """A WebSocket event frame: ``{"event", "data", "broadcast", "seq"}`` in that order."""

    event: str
    data: dict[str, Any]
    broadcast: Broadcast
    seq: int


class WsResponse(msgspec.Struct, kw_only=True):
    """A reply to a client action: ``{"status", "seq_reply", "data"?, "error"?}``."""

    status: str
    seq_reply: int | UnsetType = UNSET
    data: dict[str, Any] | UnsetType = UNSET
    error: dict[str, Any] | UnsetType = UNSET


# Go's encoding/json sorts map keys; "deterministic" does the same and keeps struct order.
_ENCODER = msgspec.json.Encoder(order="deterministic")
_POST_DECODER = msgspec.json.Decoder(Post)


def encode(value: object) -> bytes:
    """Encode ``value`` to JSON the way the server would (map keys sorted)."""
    return _ENCODER.encode(value)


def decode_post(data: bytes | str) -> Post:
    """Decode a post (e.g. the double-encoded ``data.post`` of a ``posted`` event)."""
    return _POST_DECODER.decode(data)
