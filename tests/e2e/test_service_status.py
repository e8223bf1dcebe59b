"""``!status`` reports the live connections, versions, thread counts and the mapping file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from mmthreads.core.render import session_id_from_props
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback


async def _status(loopback: Loopback) -> str:
    command = await loopback.human.post(loopback.dm_id, "!status")

    def is_answer(post: Post) -> bool:
        return (
            post.user_id == loopback.bot.id
            and post.channel_id == loopback.dm_id
            and not post.root_id
            and session_id_from_props(post.props) is None
            and post.create_at >= command.create_at
        )

    return (await loopback.mm.wait_post(is_answer)).message


async def test_status_shows_connections_versions_and_counts(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        for title in ("one", "two"):
            session = loopback.oc.create_session(loopback.directory, title)
            await loopback.root_of(session.id)
        lines = (await _status(loopback)).splitlines()
        assert lines[0] == "**mmthreads status**"
        assert lines[1].startswith("- Mattermost: connected since ")
        server = next(line for line in lines if line.startswith("- OpenCode "))
        assert loopback.oc.url.rstrip("/") in server
        assert "(1.18.33): connected since " in server
        threads = next(line for line in lines if line.startswith("- Threads: "))
        assert "2 active" in threads
        assert "- Queued prompts: 0" in lines
        assert any(line.startswith("- Uptime: ") for line in lines)
        assert f"- Mapping file: `{loopback.settings.mapping_file}`" in lines


async def test_status_shows_a_lost_server(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        loopback.oc.stop()
        server = ""
        for _ in range(100):
            lines = (await _status(loopback)).splitlines()
            server = next(line for line in lines if line.startswith("- OpenCode "))
            if "disconnected" in server:
                break
            await trio.sleep(0.05)
        assert "(1.18.33): **disconnected** since " in server
