"""The emulator's whole state, sans-IO: accounts, DMs, files, posts, reactions and the queries
clients page through (``GET /posts/{id}/thread`` and ``GET /channels/{id}/posts``).

``MattermostState`` never does I/O and never reads a clock other than the one it was given.
Every method that a REST route maps to takes the acting user's id and raises ``AppError``; the
events a change broadcasts wait in ``outbox`` until ``take_events()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmthreads.harness.mattermost.errors import AppError
from mmthreads.harness.mattermost.ids import is_valid_id
from mmthreads.harness.mattermost.models import PostList
from mmthreads.harness.mattermost.reactions import ReactionStore

if TYPE_CHECKING:
    from mmthreads.harness.mattermost.models import FileInfo, Post

__all__ = ["SINCE_LIMIT", "MattermostState"]

#: ``GetPostsSince`` caps its answer at this many rows.
SINCE_LIMIT = 1000


def _key(post: Post) -> tuple[int, str]:
    return (post.create_at, post.id)


class MattermostState(ReactionStore):
    """Everything a Mattermost server remembers, for the bot's subset of the API."""

    def file_infos_for_post(self, actor: str, post_id: str) -> list[FileInfo]:
        """``GET /posts/{id}/files/info``."""
        post = self._readable(actor, post_id)
        return [self.files[f] for f in post.file_ids if f in self.files]

    def thread(
        self,
        actor: str,
        post_id: str,
        *,
        per_page: int = 0,
        from_post: str = "",
        from_create_at: int = 0,
        from_update_at: int = 0,
        updates_only: bool = False,
        direction: str = "",
    ) -> PostList:
        """``GET /posts/{id}/thread``: the root and its live replies, any post id of the thread.

        ``per_page == 0`` returns everything, newest first.  Otherwise the thread (root
        included) is ordered by ``(create_at, id)``, ascending for ``direction="down"`` and
        descending otherwise, cut after the ``(from_create_at, from_post)`` cursor, and limited
        to ``per_page`` with ``has_next`` telling whether more follow.  The root is always in
        ``posts``.

        Raises:
            AppError: 400 for inconsistent paging parameters, 404/403 as ``get_post``.
        """
        if per_page < 0 or per_page > 200:
            raise AppError.invalid_param("perPage")
        if from_post and not from_create_at:
            raise AppError.invalid_param("if fromPost is set, then fromCreateAt must also be set")
        if from_update_at and from_create_at:
            raise AppError.invalid_param("fromUpdateAt")
        if updates_only and not from_update_at:
            raise AppError.invalid_param("fromUpdateAt")
        if direction not in ("", "up", "down"):
            raise AppError.invalid_param("direction")
        if updates_only and direction == "up":
            raise AppError.invalid_param("updatesOnly")
        post = self._readable(actor, post_id)
        root = self.posts[post.root_id] if post.root_id else post
        if root.delete_at:
            raise AppError.post_not_found()
        thread = [root, *(self.posts[r] for r in self.replies.get(root.id, []))]
        thread = [p for p in thread if not p.delete_at]
        result = PostList()
        if updates_only:
            page = sorted(
                (p for p in thread if p.update_at > from_update_at), key=lambda p: p.update_at
            )
        elif per_page == 0:
            page = sorted(thread, key=_key, reverse=True)
        else:
            down = direction == "down"
            cursor = (from_create_at, from_post)
            page = sorted(thread, key=_key, reverse=not down)
            if from_create_at:
                if from_post:
                    page = [p for p in page if (_key(p) > cursor if down else _key(p) < cursor)]
                else:
                    page = [
                        p
                        for p in page
                        if (p.create_at > from_create_at if down else p.create_at < from_create_at)
                    ]
            result.has_next = len(page) > per_page
            page = page[:per_page]
        result.order = [p.id for p in page]
        result.posts = {p.id: self.render(p) for p in [root, *page]}
        return result

    def channel_posts(
        self,
        actor: str,
        channel_id: str,
        *,
        page: int = 0,
        per_page: int = 60,
        since: int = 0,
        before: str = "",
        after: str = "",
        include_deleted: bool = False,
    ) -> PostList:
        """``GET /channels/{id}/posts`` in its four modes, first match wins.

        - ``since``: every post whose ``update_at`` is later, deleted and edited ones included,
          plus the live roots of touched threads; not paged, at most ``SINCE_LIMIT`` rows.
        - ``after`` / ``before``: pages of live posts newer / older than that post.
        - otherwise: pages of live posts, newest first.

        Thread roots referenced by replies of a page are added to ``posts`` (not to ``order``).

        Raises:
            AppError: 400 malformed cursor, 403 ``include_deleted`` (admins only) or no access,
                404 unknown channel.
        """
        if after and not is_valid_id(after):
            raise AppError.invalid_param("after")
        if before and not is_valid_id(before):
            raise AppError.invalid_param("before")
        if include_deleted:
            raise AppError.forbidden()
        self.channel_for(actor, channel_id)
        in_channel = sorted(
            (p for p in self.posts.values() if p.channel_id == channel_id), key=_key, reverse=True
        )
        result = PostList()
        if since > 0:
            changed = [p for p in in_channel if p.update_at > since][:SINCE_LIMIT]
            ids = {p.id for p in changed}
            roots = {p.root_id for p in changed if p.root_id and p.root_id not in ids}
            changed += [self.posts[r] for r in roots if not self.posts[r].delete_at]
            changed.sort(key=_key, reverse=True)
            result.order = [p.id for p in changed]
            result.posts = {p.id: self.render(p) for p in changed}
            return result
        live = [p for p in in_channel if not p.delete_at]
        start = page * per_page
        if after:
            pivot = self.posts.get(after)
            newer = sorted((p for p in live if pivot and _key(p) > _key(pivot)), key=_key)
            chunk = list(reversed(newer[start : start + per_page]))
        elif before:
            pivot = self.posts.get(before)
            older = [p for p in live if pivot and _key(p) < _key(pivot)]
            chunk = older[start : start + per_page]
        else:
            chunk = live[start : start + per_page]
        result.order = [p.id for p in chunk]
        result.posts = {p.id: self.render(p) for p in chunk}
        for p in chunk:
            if p.root_id and p.root_id not in result.posts and not self.posts[p.root_id].delete_at:
                result.posts[p.root_id] = self.render(self.posts[p.root_id])
        if chunk:
            index = live.index(chunk[0])
            result.next_post_id = live[index - 1].id if index > 0 else ""
            index = live.index(chunk[-1])
            result.prev_post_id = live[index + 1].id if index + 1 < len(live) else ""
        return result
