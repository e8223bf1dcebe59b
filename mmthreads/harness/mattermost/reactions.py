"""Reactions: the fourth layer of the emulator's state (``app/reaction.go``).

Rules kept from the server: saving a reaction is idempotent but broadcasts ``reaction_added``
each time; only system emoji exist (no custom emoji); a post takes a limited number of distinct
emoji; every reaction change bumps the post's ``update_at``; removing a reaction that does not
exist still succeeds and broadcasts ``reaction_removed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mmthreads.harness.mattermost.emoji import EMOJI_NAME_RE, is_system_emoji
from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.events import WsEvent
from mmthreads.harness.mattermost.ids import is_valid_id
from mmthreads.harness.mattermost.models import Broadcast, Reaction, encode
from mmthreads.harness.mattermost.posts import PostStore

if TYPE_CHECKING:
    from mmthreads.harness.mattermost.models import Post

__all__ = ["ReactionStore"]


class ReactionStore(PostStore):
    """Adds, removes and lists the reactions of posts."""

    def _reaction_post(self, actor: str, post_id: str) -> Post:
        post = self.posts.get(post_id)
        if post is None or not self.is_member(actor, post.channel_id):
            raise AppError.forbidden()
        if post.delete_at:
            raise AppError.post_not_found()
        return post

    def save_reaction(self, actor: str, user_id: str, post_id: str, emoji_name: str) -> Reaction:
        """``POST /reactions``: idempotent; broadcasts ``reaction_added`` each time.

        Raises:
            AppError: 400 invalid ids or name, 403 other user or no access, 404 unknown emoji
                or deleted post, 400 too many distinct emoji.
        """
        if not (is_valid_id(user_id) and is_valid_id(post_id)) or not 0 < len(emoji_name) <= 64:
            raise AppError("api.reaction.save_reaction.invalid.app_error", 400)
        if user_id != actor:
            raise AppError("api.reaction.save_reaction.user_id.app_error", 403)
        post = self._reaction_post(actor, post_id)
        if not is_system_emoji(emoji_name):
            raise AppError("app.emoji.get_by_name.no_result", 404)
        if EMOJI_NAME_RE.fullmatch(emoji_name) is None:
            raise AppError("model.reaction.is_valid.emoji_name.app_error", 400)
        reactions = self.reactions.setdefault(post_id, [])
        names = {r.emoji_name for r in reactions}
        if emoji_name not in names and len(names) >= self.limits.unique_reactions_per_post:
            raise AppError("app.reaction.save.save.too_many_reactions", 400)
        now = self.now()
        for reaction in reactions:
            if reaction.user_id == actor and reaction.emoji_name == emoji_name:
                reaction.update_at = now
                break
        else:
            reaction = Reaction(
                user_id=actor,
                post_id=post_id,
                emoji_name=emoji_name,
                create_at=now,
                update_at=now,
                channel_id=post.channel_id,
            )
            reactions.append(reaction)
        post.update_at = now
        self._reaction_event("reaction_added", reaction)
        return msgspec.structs.replace(reaction)

    def delete_reaction(self, actor: str, user_id: str, post_id: str, emoji_name: str) -> None:
        """``DELETE /users/{uid}/posts/{pid}/reactions/{name}``; broadcasts ``reaction_removed``.

        Raises:
            AppError: 400 malformed parameters, 403 other user or no access.
        """
        if not is_valid_id(user_id):
            raise AppError.invalid_url_param("user_id")
        if not is_valid_id(post_id):
            raise AppError.invalid_url_param("post_id")
        if not emoji_name:
            raise AppError.invalid_url_param("emoji_name")
        if user_id != actor:
            raise AppError.forbidden()
        post = self._reaction_post(actor, post_id)
        now = self.now()
        reactions = self.reactions.get(post_id, [])
        gone = Reaction(
            user_id=actor, post_id=post_id, emoji_name=emoji_name, create_at=0, update_at=now
        )
        for reaction in reactions:
            if reaction.user_id == actor and reaction.emoji_name == emoji_name:
                reactions.remove(reaction)
                gone = msgspec.structs.replace(reaction, update_at=now)
                break
        gone.delete_at = now
        gone.channel_id = post.channel_id
        post.update_at = now
        self._reaction_event("reaction_removed", gone)

    def reactions_for(self, actor: str, post_id: str) -> list[Reaction]:
        """``GET /posts/{id}/reactions``."""
        self._readable(actor, post_id)
        return list(self.reactions.get(post_id, []))

    def _reaction_event(self, name: str, reaction: Reaction) -> None:
        self.outbox.append(
            WsEvent(
                event=name,
                data={"reaction": encode(reaction).decode()},
                broadcast=Broadcast(channel_id=reaction.channel_id),
            )
        )
