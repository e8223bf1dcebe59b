"""Thread creation is race-free per session and survives a crash between posting and saving."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from mmthreads.adapters.mattermost_rest import MattermostClient
from mmthreads.adapters.opencode import OpenCodeClient
from mmthreads.core import agent_events as ae
from mmthreads.core.backoff import RetryPolicy
from mmthreads.core.render import root_post_props, session_id_from_props
from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping
from mmthreads.mapping_index import MappingIndex
from mmthreads.mapping_store import MappingStore
from mmthreads.runtime.bridge import Bridge
from mmthreads.runtime.sessions import SessionRegistry
from mmthreads.runtime.thread_roots import generated_title, short_id
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import Loopback

_SESSION = "ses_3f1a2b7c9ffeAbCdEfGhIjKlMn"


def _info(directory: str) -> ae.SessionInfo:
    return ae.SessionInfo(
        session_id=_SESSION, directory=directory, title="raced", created_ms=1_768_467_600_000
    )


def _bridge(
    chat: MattermostClient, client: OpenCodeClient, tmp_path: Path, bot_user_id: str
) -> Bridge:
    return Bridge(
        chat=chat,
        bot_user_id=bot_user_id,
        max_post_size=16383,
        site_url="",
        index=MappingIndex(),
        store=MappingStore(tmp_path / "threads.json", fsync=False),
        servers={client.server: client},
        edit_interval=0.05,
        queue_limit=5,
        inbox_size=8,
    )


def _registry(bridge: Bridge, nursery: trio.Nursery, loopback: Loopback) -> SessionRegistry:
    return SessionRegistry(
        bridge,
        nursery,
        owner_user_id=loopback.owner.id,
        dm_channel_id=loopback.dm_id,
        restart_policy=RetryPolicy(max_attempts=1),
    )


def test_short_id_takes_the_last_six_characters() -> None:
    assert short_id("ses_3f1a2b7c9ffeAbCdEfGhIjKlMn") == "ses_IjKlMn"
    assert short_id("ses_3f1a2b7c9ffeAbCdEfGhIjKlMo") != short_id(_SESSION)


async def test_two_triggers_make_one_root(loopback: Loopback, tmp_path: Path) -> None:
    with trio.fail_after(WATCHDOG):
        async with (
            MattermostClient(loopback.mm.url, loopback.bot.token) as chat,
            OpenCodeClient(loopback.oc.url) as client,
            trio.open_nursery() as nursery,
        ):
            bridge = _bridge(chat, client, tmp_path, loopback.bot.id)
            registry = _registry(bridge, nursery, loopback)
            async with trio.open_nursery() as racers:
                for _ in range(3):
                    racers.start_soon(registry.ensure_thread, client, _info(loopback.directory))
            roots = [
                p for p in loopback.mm.posts_in(loopback.dm_id) if session_id_from_props(p.props)
            ]
            assert len(roots) == 1
            mapping = bridge.index.get(_SESSION)
            assert mapping is not None
            assert mapping.thread_root_post_id == roots[0].id
            nursery.cancel_scope.cancel()


async def test_an_existing_root_is_reused(loopback: Loopback, tmp_path: Path) -> None:
    with trio.fail_after(WATCHDOG):
        async with (
            MattermostClient(loopback.mm.url, loopback.bot.token) as chat,
            OpenCodeClient(loopback.oc.url) as client,
            trio.open_nursery() as nursery,
        ):
            bridge = _bridge(chat, client, tmp_path, loopback.bot.id)
            # A root posted before a crash, whose mapping never reached the file.
            earlier = ThreadMapping(
                session_id=_SESSION,
                thread_root_post_id="x",
                short_id=short_id(_SESSION),
                mattermost_user_id=loopback.owner.id,
                dm_channel_id=loopback.dm_id,
                project_name="proj",
                directory=loopback.directory,
                status=ThreadState.ACTIVE,
                created_at="2026-01-15T09:00:00.000Z",
                last_activity_at="2026-01-15T09:00:00.000Z",
            )
            posted = await chat.create_post(
                loopback.dm_id, "an earlier root", props=root_post_props(earlier)
            )
            registry = _registry(bridge, nursery, loopback)
            await registry.ensure_thread(client, _info(loopback.directory))
            mapping = bridge.index.get(_SESSION)
            assert mapping is not None
            assert mapping.thread_root_post_id == posted.id
            assert len(loopback.mm.posts_in(loopback.dm_id)) == 1
            saved = MappingStore(bridge.store.path).load().index.get(_SESSION)
            assert saved is not None
            assert saved.thread_root_post_id == posted.id
            nursery.cancel_scope.cancel()


def test_default_titles_are_not_generated_titles() -> None:
    assert generated_title("New session - 2026-11-25T20:45:40.642Z") is None
    assert generated_title("Child session - 2026-11-25T20:45:40.642Z") is None
    assert generated_title("") is None
    assert generated_title("Fix email pipeline") == "Fix email pipeline"
