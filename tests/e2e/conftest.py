"""Fixtures of the end-to-end tests: emulator, stand-in, settings, and the service itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec
import pytest
import trio

from mmthreads.core.render import session_id_from_props
from mmthreads.harness.mattermost import open_mattermost_emulator
from mmthreads.harness.opencode import open_opencode_standin
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.service import serve
from mmthreads.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from mmthreads.harness.mattermost import Account, Human, MattermostServer, Post
    from mmthreads.harness.opencode.server import OpenCodeStandInHandle
    from mmthreads.mapping import ThreadMapping

#: Every end-to-end test must finish within this many seconds of real time.
WATCHDOG: Final = 30.0
EDIT_INTERVAL: Final = 0.05
CHUNK_DELAY: Final = 0.001


class Running:
    """A started service: set ``trigger`` to stop it, ``stopped`` is set once it returned."""

    def __init__(self) -> None:
        self.trigger = trio.Event()
        self.stopped = trio.Event()

    async def stop(self) -> None:
        """Stop the service gracefully and wait until ``serve`` has returned."""
        self.trigger.set()
        await self.stopped.wait()


@dataclass
class Loopback:
    """The harness servers, the people, and the service under test."""

    mm: MattermostServer
    oc: OpenCodeStandInHandle
    bot: Account
    owner: Account
    human: Human
    dm_id: str
    directory: str
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

        The file is written right after the root post is created, so this polls briefly;
        there is nothing else to wait on from outside the process.
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


@pytest.fixture
async def loopback(tmp_path: Path) -> AsyncIterator[Loopback]:
    """A running emulator and stand-in with a bot and its owner, and settings for the bridge."""
    project = tmp_path / "proj"
    project.mkdir()
    with trio.fail_after(WATCHDOG):
        async with (
            open_mattermost_emulator() as mm,
            open_opencode_standin(directory=str(project), chunk_delay=CHUNK_DELAY) as oc,
        ):
            bot = mm.create_user("mmthreads", bot=True)
            owner = mm.create_user("alice")
            human = mm.human(owner)
            dm = await human.dm_with(bot)
            env = {
                "HOME": str(tmp_path),
                "MATTERMOST_URL": mm.url,
                "MATTERMOST_TOKEN": bot.token,
                "MATTERMOST_OWNER_USER_ID": owner.id,
                "OPENCODE_URL": oc.url,
            }
            flags: dict[str, object] = {
                "edit_interval": EDIT_INTERVAL,
                "mapping_file": str(tmp_path / "threads.json"),
            }
            settings = load_settings(env=env, config_path=None, flags=flags)
            # Notices at once: the tests of the notice delay set their own.
            sessions = msgspec.structs.replace(settings.sessions, disconnect_notice_delay=0.0)
            settings = msgspec.structs.replace(settings, sessions=sessions)
            async with trio.open_nursery() as nursery:
                yield Loopback(
                    mm=mm,
                    oc=oc,
                    bot=bot,
                    owner=owner,
                    human=human,
                    dm_id=dm.id,
                    directory=str(project),
                    settings=settings,
                    nursery=nursery,
                )
                nursery.cancel_scope.cancel()
