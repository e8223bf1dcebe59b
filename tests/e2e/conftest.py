"""Fixtures of the end-to-end tests: emulator, stand-in, settings, and the service itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec
import pytest
import trio

from mmthreads.harness.mattermost import open_mattermost_emulator
from mmthreads.harness.opencode import open_opencode_standin
from mmthreads.settings import load_settings
from tests.service_side import ChatSide

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from mmthreads.harness.opencode.server import OpenCodeStandInHandle

#: Every end-to-end test must finish within this many seconds of real time.
WATCHDOG: Final = 30.0
EDIT_INTERVAL: Final = 0.05
CHUNK_DELAY: Final = 0.001


@dataclass(kw_only=True)
class Loopback(ChatSide):
    """The harness servers, the people, and the service under test.

    Attributes:
        oc: The OpenCode stand-in.
        directory: The project directory the sessions are created in.
    """

    oc: OpenCodeStandInHandle
    directory: str


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
