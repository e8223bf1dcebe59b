"""The bot token and the OpenCode password never show: not in a log record, a post or an error.

One whole scenario runs with every logger (httpx, httpcore, trio-websocket, hypercorn included)
at DEBUG: start, a thread, a prompt and its answer, commands, a prompt OpenCode refuses, a
Mattermost call that fails, OpenCode turning the bridge's password down, and shutdown. Then
every record (message, arguments, exception text), every post of the emulator and the settings'
reprs are searched for either secret, in clear and as the Basic-auth header carries it.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Final

import msgspec
import trio

from mmthreads.core.model_choice import MODELS_UNAVAILABLE
from mmthreads.harness.faults import Status
from mmthreads.harness.mattermost import open_mattermost_emulator
from mmthreads.harness.opencode import open_opencode_standin
from mmthreads.runtime.effects import PROMPT_NOT_SENT
from mmthreads.settings import load_settings
from tests.e2e.conftest import CHUNK_DELAY, EDIT_INTERVAL, WATCHDOG, Loopback

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mmthreads.harness.mattermost import Post

MM_TOKEN: Final = "mmtokensecret0123456789abc"
OC_PASSWORD: Final = "oc-Pa55word-very-secret"
#: Every logger the scenario may write to; set to DEBUG whatever the test run configured.
_LOGGERS: Final = ("", "httpx", "httpcore", "hpack", "trio-websocket", "hypercorn", "mmthreads")


def _forms() -> list[str]:
    """Each secret as it could leak: in clear, in a header, base64 in a Basic-auth header."""
    basic = base64.b64encode(f"opencode:{OC_PASSWORD}".encode()).decode()
    return [MM_TOKEN, OC_PASSWORD, basic, basic.rstrip("=")]


class _Recorder(logging.Handler):
    """Keeps every record; formats each the way a log file would show it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[str]:
        for record in self.records:
            yield self.format(record)
            yield repr(record.args)
            if record.exc_info and record.exc_info[1] is not None:
                yield repr(record.exc_info[1])


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


async def test_no_secret_in_logs_posts_or_errors(tmp_path: Path) -> None:
    recorder = _Recorder()
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    root = logging.getLogger()
    root.addHandler(recorder)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    errors: list[str] = []
    try:
        with trio.fail_after(WATCHDOG):
            errors = await _scenario(tmp_path)
    finally:
        root.removeHandler(recorder)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

    assert len(recorder.records) > 100  # DEBUG was on: httpx, httpcore and the bridge spoke
    assert {r.name.split(".")[0] for r in recorder.records} >= {"httpx", "httpcore", "mmthreads"}
    for text in [*recorder.texts(), *errors]:
        for secret in _forms():
            assert secret not in text, text


async def _scenario(tmp_path: Path) -> list[str]:
    """Run the whole scenario; return the texts the user saw plus the settings' reprs."""
    project = tmp_path / "proj"
    project.mkdir()
    async with (
        open_mattermost_emulator() as mm,
        open_opencode_standin(
            directory=str(project), chunk_delay=CHUNK_DELAY, password=OC_PASSWORD
        ) as oc,
    ):
        bot = mm.create_user("mmthreads", bot=True, token=MM_TOKEN)
        owner = mm.create_user("alice")
        human = mm.human(owner)
        dm = await human.dm_with(bot)
        env = {
            "HOME": str(tmp_path),
            "MATTERMOST_URL": mm.url,
            "MATTERMOST_TOKEN": MM_TOKEN,
            "MATTERMOST_OWNER_USER_ID": owner.id,
            "OPENCODE_URL": oc.url,
            "OPENCODE_SERVER_PASSWORD": OC_PASSWORD,
        }
        flags: dict[str, object] = {
            "edit_interval": EDIT_INTERVAL,
            "mapping_file": str(tmp_path / "threads.json"),
            "log_level": "DEBUG",
        }
        settings = load_settings(env=env, config_path=None, flags=flags)
        async with trio.open_nursery() as nursery:
            loopback = Loopback(
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
            running = await loopback.start()
            session = oc.create_session(str(project), "secret keeping")
            root = await loopback.root_of(session.id)

            # A prompt and its answer; commands in the thread and in the main DM.
            await human.post(dm.id, "hello there", root_id=root.id)
            await loopback.bot_reply(root.id, _is_done)
            await human.post(dm.id, "!models", root_id=root.id)
            await loopback.bot_reply(root.id, lambda p: p.message.startswith("**Models**"))
            await human.post(dm.id, "!status")
            await mm.wait_post(lambda p: p.message.startswith("**mmthreads status**"))

            # A prompt OpenCode refuses (500), and a Mattermost call that fails (one reaction).
            oc.standin.plan.add("http:POST /session/*/prompt_async", Status(status=500))
            mm.emulator.plan.add("http:POST /api/v4/reactions", Status(status=500), times=3)
            await human.post(dm.id, "refuse me", root_id=root.id)
            await loopback.bot_reply(root.id, lambda p: p.message.startswith(PROMPT_NOT_SENT))
            await human.post(dm.id, "take this one", root_id=root.id)
            await loopback.bot_reply(
                root.id, lambda p: _is_done(p) and "take this one" in p.message
            )

            # OpenCode no longer takes the bridge's password: prompts and commands say so.
            oc.standin.password = "another-password"
            await human.post(dm.id, "locked out?", root_id=root.id)
            refused = await loopback.bot_reply(
                root.id, lambda p: p.message.startswith(PROMPT_NOT_SENT) and "401" in p.message
            )
            await human.post(dm.id, "!models", root_id=root.id)
            await loopback.bot_reply(root.id, lambda p: p.message.startswith(MODELS_UNAVAILABLE))
            assert refused.message

            await running.stop()
            nursery.cancel_scope.cancel()
        seen = [
            p.message + msgspec.json.encode(p.props).decode()
            for channel in mm.emulator.state.channels
            for p in mm.emulator.posts_in(channel, include_deleted=True)
        ]
        return [*seen, repr(settings), str(settings), repr(settings.mattermost)]
