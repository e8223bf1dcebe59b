"""Posts: the third layer of the emulator's state (``app/post.go``, ``model/post.go``).

Rules kept from the server: ``root_id`` must name a live root in the same channel; messages are
limited in runes (code points), not bytes; bots get ``props.from_bot = "true"``; every edit
and deletion bumps ``update_at``; deleting a root deletes its replies in the same step but
broadcasts a single ``post_deleted``; replies bump their root's ``update_at``.  A post's
reactions are kept here, because rendering a post shows them; ``reactions.py`` changes them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import msgspec

from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.events import WsEvent
from mmthreads.harness.mattermost.files import FileStore
from mmthreads.harness.mattermost.ids import is_valid_id, wall_clock_ms
from mmthreads.harness.mattermost.models import Broadcast, Post, PostMetadata, Reaction, encode

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.mattermost.directory import Limits

__all__ = ["CreatePost", "PostPatch", "PostStore", "PostUpdate"]

_KNOWN_TYPES: Final = frozenset(
    {"", "slack_attachment", "me", "reminder", "card", "add_bot_teams_channels", "burn_on_read"}
)
_HASHTAG_RE: Final = re.compile(r"(?<![\w#])#([A-Za-z][\w.-]*\w)")
_MENTION_RE: Final = re.compile(r"(?<![\w@])@([a-z0-9._-]+)", re.IGNORECASE)


class CreatePost(msgspec.Struct, kw_only=True):
    """The body of ``POST /posts`` (unknown fields ignored, as Go's decoder does)."""

    channel_id: str = ""
    message: str = ""
    root_id: str = ""
    file_ids: list[str] | None = None
    props: dict[str, Any] | None = None
    type: str = ""
    pending_post_id: str = ""


class PostPatch(msgspec.Struct, kw_only=True):
    """The body of ``PUT /posts/{id}/patch``: absent fields stay unchanged."""

    message: str | None = None
    props: dict[str, Any] | None = None
    file_ids: list[str] | None = None
    is_pinned: bool | None = None
    has_reactions: bool | None = None


class PostUpdate(msgspec.Struct, kw_only=True):
    """The body of ``PUT /posts/{id}``: a whole post; ``id`` must match the path."""

    id: str = ""
    message: str = ""
    props: dict[str, Any] | None = None
    file_ids: list[str] | None = None
    is_pinned: bool = False


def _hashtags(message: str) -> str:
    return " ".join(dict.fromkeys("#" + tag for tag in _HASHTAG_RE.findall(message)))


class PostStore(FileStore):
    """Posts by id (in creation order), their replies, and their reactions by post id."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        seed: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(clock=clock, seed=seed, limits=limits)
        self.posts: dict[str, Post] = {}
        self.reactions: dict[str, list[Reaction]] = {}
        #: Root id -> reply ids, oldest first.
        self.replies: dict[str, list[str]] = {}

    # -- reading --------------------------------------------------------------------------

    def render(self, post: Post) -> Post:
        """The post "prepared for the client": metadata, reaction flag and reply counts."""
        metadata = PostMetadata()
        files = [self.files[f] for f in post.file_ids if f in self.files]
        if files:
            metadata.files = files
        reactions = self.reactions.get(post.id, [])
        if reactions:
            metadata.reactions = list(reactions)
        root_id = post.root_id or post.id
        live = [r for r in self.replies.get(root_id, []) if not self.posts[r].delete_at]
        return msgspec.structs.replace(
            post,
            props=dict(post.props),
            file_ids=list(post.file_ids),
            metadata=metadata,
            has_reactions=True if reactions else msgspec.UNSET,
            reply_count=len(live),
            last_reply_at=self.posts[live[-1]].create_at if live else 0,
        )

    def get_post(self, actor: str, post_id: str) -> Post:
        """``GET /posts/{id}``: a live post ``actor`` can read, rendered.

        Raises:
            AppError: 400 malformed id, 404 missing or deleted, 403 not a channel member.
        """
        return self.render(self._readable(actor, post_id))

    def _readable(self, actor: str, post_id: str) -> Post:
        if not is_valid_id(post_id):
            raise AppError.invalid_url_param("post_id")
        post = self.posts.get(post_id)
        if post is None or post.delete_at:
            raise AppError.post_not_found()
        if not self.is_member(actor, post.channel_id):
            raise AppError.forbidden()
        return post

    def _editable(self, actor: str, post_id: str) -> Post:
        # Edits answer 403 (not 404) for a missing post: the handler turns any lookup error
        # into a permission error.
        post = self.posts.get(post_id)
        if post is None or post.delete_at or post.user_id != actor:
            raise AppError.forbidden()
        return post

    def _validate(self, message: str, props: dict[str, Any], file_ids: list[str]) -> None:
        if len(message) > self.limits.max_post_size:
            raise AppError("model.post.is_valid.message_length.app_error", 400)
        if len(encode(file_ids).decode()) > 300:
            raise AppError("model.post.is_valid.file_ids.app_error", 400)
        if len(encode(props).decode()) > self.limits.max_props_runes:
            raise AppError("model.post.is_valid.props.app_error", 400)

    # -- writing --------------------------------------------------------------------------

    def create_post(self, actor: str, body: CreatePost, *, set_online: bool = True) -> Post:
        """``POST /posts`` as ``actor``; broadcasts ``posted``.

        Raises:
            AppError: 403 no access to the channel; 400 for a bad root, type, size or props.
        """
        channel = self.channels.get(body.channel_id)
        if channel is None or not self.is_member(actor, channel.id):
            raise AppError.forbidden()
        if body.type.startswith("system_"):
            raise AppError.invalid_param("post.type")
        if body.root_id:
            root = self.posts.get(body.root_id)
            if root is None or root.delete_at or root.root_id:
                raise AppError("api.post.create_post.root_id.app_error", 400)
            if root.channel_id != channel.id:
                raise AppError("api.post.create_post.channel_root_id.app_error", 400)
        if body.type not in _KNOWN_TYPES and not body.type.startswith("custom_"):
            raise AppError("model.post.is_valid.type.app_error", 400)
        props = dict(body.props or {})
        user = self.users[actor]
        if user.is_bot is True:
            props["from_bot"] = "true"
        file_ids = list(dict.fromkeys(body.file_ids or []))
        self._validate(body.message, props, file_ids)
        now = self.now()
        post = Post(
            id=self.new_id(),
            create_at=now,
            update_at=now,
            user_id=actor,
            channel_id=channel.id,
            root_id=body.root_id,
            message=body.message,
            type=body.type,
            props=props,
            hashtags=_hashtags(body.message),
            pending_post_id=body.pending_post_id,
        )
        post.file_ids = self._attach_files(actor, channel.id, post.id, file_ids)
        self.posts[post.id] = post
        if post.root_id:
            self.replies.setdefault(post.root_id, []).append(post.id)
            self.posts[post.root_id].update_at = now
        else:
            channel.last_root_post_at = now
            channel.total_msg_count_root += 1
        channel.last_post_at = now
        channel.total_msg_count += 1
        rendered = self.render(post)
        self.outbox.append(self._posted_event(rendered, set_online=set_online))
        return rendered

    def _posted_event(self, post: Post, *, set_online: bool) -> WsEvent:
        channel = self.channels[post.channel_id]
        sender = self.users[post.user_id]
        members = self.members[channel.id]
        mentioned = {self.other_member(channel.id, sender.id)}
        by_name = {self.users[m].username.lower(): m for m in members}
        mentioned.update(
            by_name[n.lower()] for n in _MENTION_RE.findall(post.message) if n.lower() in by_name
        )
        mentioned.discard(sender.id)
        data: dict[str, Any] = {
            "channel_display_name": "@" + sender.username,
            "channel_name": channel.name,
            "channel_type": channel.type,
            "post": encode(post).decode(),
            "sender_name": "@" + sender.username,
            "set_online": set_online,
            "team_id": "",
        }
        infos = [self.files[f] for f in post.file_ids]
        if any(i.mime_type.startswith("image/") for i in infos):
            data["image"] = "true"
        if any(not i.mime_type.startswith("image/") for i in infos):
            data["otherFile"] = "true"
        return WsEvent(
            event="posted",
            data=data,
            broadcast=Broadcast(channel_id=channel.id),
            mentions=frozenset(mentioned),
        )

    def _save_edit(self, post: Post, message: str, props: dict[str, Any], files: list[str]) -> Post:
        self._validate(message, props, files)
        now = self.now()
        if message != post.message:
            post.message = message
            post.edit_at = now
            post.hashtags = _hashtags(message)
        post.props = props
        post.file_ids = self._attach_files(post.user_id, post.channel_id, post.id, files)
        post.update_at = now
        rendered = self.render(post)
        self.outbox.append(
            WsEvent(
                event="post_edited",
                data={"post": encode(rendered).decode()},
                broadcast=Broadcast(channel_id=post.channel_id),
            )
        )
        return rendered

    def patch_post(self, actor: str, post_id: str, patch: PostPatch) -> Post:
        """``PUT /posts/{id}/patch``: ``props`` replaces the whole map; broadcasts ``post_edited``.

        Raises:
            AppError: 403 missing, deleted or someone else's post; 400 invalid result.
        """
        post = self._editable(actor, post_id)
        if patch.is_pinned is not None:
            post.is_pinned = patch.is_pinned
        return self._save_edit(
            post,
            post.message if patch.message is None else patch.message,
            dict(post.props) if patch.props is None else dict(patch.props),
            list(post.file_ids) if patch.file_ids is None else list(patch.file_ids),
        )

    def update_post(self, actor: str, post_id: str, body: PostUpdate) -> Post:
        """``PUT /posts/{id}``: full update; missing ``file_ids`` keeps the old ones.

        Raises:
            AppError: 400 ``id`` differs from the path; as ``patch_post`` otherwise.
        """
        if body.id != post_id:
            raise AppError.invalid_param("id")
        post = self._editable(actor, post_id)
        post.is_pinned = body.is_pinned
        files = list(post.file_ids) if body.file_ids is None else list(body.file_ids)
        return self._save_edit(post, body.message, dict(body.props or {}), files)

    def delete_post(self, actor: str, post_id: str) -> None:
        """``DELETE /posts/{id}``: soft delete; a root takes its replies along (one event).

        Raises:
            AppError: 404 missing or already deleted, 403 someone else's post.
        """
        if not is_valid_id(post_id):
            raise AppError.invalid_url_param("post_id")
        post = self.posts.get(post_id)
        if post is None or post.delete_at:
            raise AppError.post_not_found()
        if post.user_id != actor or not self.is_member(actor, post.channel_id):
            raise AppError.forbidden()
        before = encode(self.render(post)).decode()
        now = self.now()
        doomed = (
            [post]
            if post.root_id
            else [post, *(self.posts[r] for r in self.replies.get(post.id, []))]
        )
        for victim in doomed:
            if victim.delete_at:
                continue
            victim.delete_at = now
            victim.update_at = now
            victim.props = {**victim.props, "deleteBy": actor}
            for file_id in victim.file_ids:
                self.files[file_id].delete_at = now
        self.outbox.append(
            WsEvent(
                event="post_deleted",
                data={"post": before},
                broadcast=Broadcast(channel_id=post.channel_id, contains_sanitized_data=True),
            )
        )
