"""Thread roots: the first post of a session's thread, posted once.

:class:`RootPoster` builds a new session's mapping and posts its root in the owner's DM.
Before posting, it looks among the roots the DM held when the first thread was made (read
once) for one that already names the session in its props: a bridge that crashed between
posting a root and saving the mapping does not give the session a second thread.
"""

from __future__ import annotations

import logging
import posixpath
import re
import time
from typing import TYPE_CHECKING, Final

import msgspec
import trio

from mmthreads.core.render import root_post, root_post_props, session_id_from_props
from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping, iso_timestamp
from mmthreads.runtime.bridge import now_ms

if TYPE_CHECKING:
    from mmthreads.adapters.opencode import OpenCodeClient
    from mmthreads.core import agent_events as ae
    from mmthreads.runtime.bridge import Bridge

__all__ = ["ROOT_SEARCH_POSTS", "RootPoster", "generated_title", "short_id"]

logger = logging.getLogger(__name__)

#: How many of the DM's newest posts are searched for an existing root.
ROOT_SEARCH_POSTS: Final = 200
_DEFAULT_TITLE: Final = re.compile(r"(New|Child) session - \d{4}-\d\d-\d\dT")


def generated_title(title: str) -> str | None:
    """The session's title if OpenCode has generated one, else None.

    Until the first answer, OpenCode names a session ``New session - <ISO time>`` (``Child
    session - …`` for subagents); that placeholder is not a title worth showing.
    """
    return None if not title or _DEFAULT_TITLE.match(title) else title


def short_id(session_id: str) -> str:
    """The short id shown in a thread: ``ses_`` and the session id's last six characters.

    The first characters of OpenCode's ids encode the creation time, so sessions created close
    together share them; the last characters are the random part.
    """
    return "ses_" + session_id.removeprefix("ses_")[-6:].rjust(6, "0")


class RootPoster:
    """Posts the roots of new threads in one owner's DM.

    Args:
        bridge: The shared service state.
        owner_user_id: The owner whose DM gets the threads.
        dm_channel_id: That DM.
    """

    def __init__(self, bridge: Bridge, *, owner_user_id: str, dm_channel_id: str) -> None:
        self._bridge = bridge
        self._owner = owner_user_id
        self._dm = dm_channel_id
        # Session id -> root found in the DM at the first creation (see _existing_root).
        self._earlier_roots: dict[str, str] | None = None
        self._earlier_roots_lock = trio.Lock()

    def __repr__(self) -> str:
        return f"<RootPoster dm={self._dm}>"

    async def post(self, client: OpenCodeClient, info: ae.SessionInfo) -> ThreadMapping:
        """The session's new mapping, with the root of its thread posted (or found).

        Raises:
            ChatError: The root could not be posted.
        """
        created_ms = info.created_ms or now_ms()
        stamp = iso_timestamp(created_ms / 1000)
        directory = info.directory or "/"
        mapping = ThreadMapping(
            session_id=info.session_id,
            thread_root_post_id="pending",
            short_id=short_id(info.session_id),
            mattermost_user_id=self._owner,
            dm_channel_id=self._dm,
            project_name=posixpath.basename(directory.rstrip("/")) or directory,
            directory=directory,
            session_title=generated_title(info.title),
            status=ThreadState.ACTIVE,
            created_at=stamp,
            last_activity_at=iso_timestamp(time.time()),
            opencode_server=client.server,
        )
        root_id = await self._existing_root(info.session_id)
        if root_id is None:
            post = await self._bridge.chat.create_post(
                self._dm, root_post(mapping), props=root_post_props(mapping)
            )
            root_id = post.id
        else:
            logger.info("found the existing thread %s of %s", root_id, info.session_id)
        return msgspec.structs.replace(mapping, thread_root_post_id=root_id)

    async def _existing_root(self, session_id: str) -> str | None:
        """A root of the session posted before this process started (then crashed unsaved).

        The DM's newest posts are read once, at the first creation; roots posted since are
        in the index already, so later creations cost no search.
        """
        async with self._earlier_roots_lock:  # one read, however many creations start at once
            if self._earlier_roots is None:
                page = await self._bridge.chat.get_channel_posts(self._dm, 0, ROOT_SEARCH_POSTS)
                self._earlier_roots = {
                    found: post.id
                    for post in page.in_order()
                    if post.user_id == self._bridge.bot_user_id
                    and not post.root_id
                    and not post.delete_at
                    and (found := session_id_from_props(post.props)) is not None
                }
            return self._earlier_roots.get(session_id)
