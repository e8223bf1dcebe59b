"""The Mattermost side of a bridge under test: the emulator, the owner, and the running service.

Shared by the end-to-end suites (``tests/e2e`` against the OpenCode stand-in, ``tests/real``
against a real ``opencode serve``): each adds what its OpenCode side needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from mmthreads.core.render import session_id_from_props
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.service import serve

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.mattermost import Account, Human, MattermostServer, Post
    from mmthreads.mapping import ThreadMapping
    from mmthreads.settings import Settings


class Running:
    """A started service: :meth:`stop` stops it gracefully; ``stopped`` is set once it returned."""

    def __init__(self) -> None:
        self.trigger = trio.Event()
        self.stopped = trio.Event()

    async def stop(self) -> None:
        """Stop the service gracefully and wait until ``serve`` has returned."""
        self.trigger.set()
        await self.stopped.wait()


@dataclass(kw_only=True)
class ChatSide:
    """The emulator, the bot, its owner and their DM, and the settings of the bridge under test.

    Attributes:
        mm: The Mattermost emulator.
        bot: The bot account the bridge logs in as.
        owner: The person driving the sessions.
        human: The owner's client.
        dm_id: The owner's DM with the bot.
        settings: The bridge's settings (replace them before :meth:`start` to change them).
        nursery: Where the service runs.
    """

    mm: MattermostServer
    bot: Account
    owner: Account
    human: Human
    dm_id: str
    settings: Settings
    nursery: trio.Nursery

    async def start(self) -> Running:
        """Start the service; return the handle that stops it."""
        running = Running()
        await self.nursery.start(self._serve, running)
        return running

    async def _serve(
        self, running: Running, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await serve(self.settings, shutdown_trigger=running.trigger, task_status=task_status)
        finally:
            running.stopped.set()

    async def root_of(self, session_id: str) -> Post:
        """The thread root the bridge posted for a session, once its mapping is saved."""
        root = await self.mm.wait_post(
            lambda p: (
                p.channel_id == self.dm_id
                and not p.root_id
                and session_id_from_props(p.props) == session_id
            )
        )
        await self.saved_mapping(session_id)
        return root

    async def saved_mapping(self, session_id: str) -> ThreadMapping:
        """The session's mapping once the bridge has written it to the file.

        The file is written right after the root post is created, by the bridge's own task;
        there is nothing else to wait on from outside the process, so this polls briefly.
        """
        store = MappingStore(self.settings.mapping_file)
        while True:
            if self.settings.mapping_file.exists():
                mapping = store.load().index.get(session_id)
                if mapping is not None:
                    return mapping
            await trio.sleep(0.01)

    def roots(self) -> list[Post]:
        """Every thread root the bot posted in the DM."""
        return [
            p
            for p in self.mm.posts_in(self.dm_id)
            if not p.root_id and session_id_from_props(p.props) is not None
        ]

    async def bot_reply(self, root_id: str, predicate: Callable[[Post], bool]) -> Post:
        """The first bot post in a thread (now or later, edits included) that matches."""
        return await self.mm.wait_post(
            lambda p: p.user_id == self.bot.id and p.root_id == root_id and predicate(p)
        )
