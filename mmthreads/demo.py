"""``mmthreads demo``: the whole bridge on 127.0.0.1, played as a person would use it.

The demo starts the shipped harness (the Mattermost emulator and the OpenCode stand-in), starts
the real service against them, and then acts as the person at the keyboard: two OpenCode
sessions start, the person asks for ``!sessions``, types a prompt in the main DM (refused),
prompts both threads at once (approving the shell command the first one asks for with a ✅
reaction), watches one session end, replies in its thread anyway, and asks for ``!status``.
Every step waits for what the person would wait for (a post, an edit, a reaction), never for a
fixed time.  At the end the DM is printed as the person sees it: the main DM's posts in order,
each thread's replies indented under its root.

With ``--keep-running`` everything stays up after the printout, so a client can connect to the
emulator with the printed tokens, until SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import trio

from mmthreads.core.cards import PERMISSION_PROP
from mmthreads.core.render import session_id_from_props
from mmthreads.errors import MmthreadsError
from mmthreads.harness.mattermost import open_mattermost_emulator
from mmthreads.harness.opencode import open_opencode_standin
from mmthreads.runtime.service import serve
from mmthreads.settings import load_settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mmthreads.harness.mattermost import Account, Human, MattermostServer, Post
    from mmthreads.harness.opencode.server import OpenCodeStandInHandle
    from mmthreads.settings import Settings

__all__ = ["DemoResult", "ShownPost", "play_demo", "render_dm", "run_demo", "wait_for_signal"]

#: The whole scenario must be over within this many seconds (it takes a few).
DEMO_TIMEOUT: Final = 60.0
#: Seconds between two edits of a streamed answer (the service's default is 1 s).
EDIT_INTERVAL: Final = 0.2
#: Seconds between the stand-in's streamed chunks: fast, but still visibly streamed.
CHUNK_DELAY: Final = 0.005

PROMPT_A: Final = "USE_TOOLS: run the unit tests and tidy up what fails"
PROMPT_B: Final = "Update the install guide for Python 3.12"
_DONE: Final = ":checkered_flag: **Done**"
_INDENT: Final = "    │ "


@dataclass(frozen=True)
class ShownPost:
    """A post as the person sees it.

    Attributes:
        author: ``you`` or ``mmthreads``.
        message: The post's text, after every edit.
        reactions: ``:emoji: (who)`` labels, oldest first.
        replies: The thread's replies, oldest first (roots only).
    """

    author: str
    message: str
    reactions: tuple[str, ...] = ()
    replies: tuple[ShownPost, ...] = ()


@dataclass(frozen=True)
class DemoResult:
    """What the demo showed.

    Attributes:
        roots: The main DM's posts in order, each with its thread.
        text: The printed DM.
    """

    roots: tuple[ShownPost, ...]
    text: str


def _block(post: ShownPost, indent: str) -> str:
    lines = post.message.splitlines() or [""]
    if post.reactions:
        lines[-1] += "   [" + ", ".join(post.reactions) + "]"
    pad = " " * (len(post.author) + 2)
    first = f"{indent}{post.author}: {lines[0]}\n"
    return first + "".join(f"{indent}{pad}{line}\n".rstrip() + "\n" for line in lines[1:])


def render_dm(roots: tuple[ShownPost, ...]) -> str:
    """The DM as text: each root post, then its replies indented under it.

    Args:
        roots: The main DM's posts, oldest first.

    Returns:
        The text, one blank line between two roots.
    """
    parts: list[str] = []
    for root in roots:
        parts.append(_block(root, ""))
        parts.extend(_block(reply, _INDENT) for reply in root.replies)
        parts.append("\n")
    return "".join(parts)


class _Stage:
    """The running harness and bridge, and the person acting in the DM."""

    def __init__(
        self,
        mm: MattermostServer,
        oc: OpenCodeStandInHandle,
        bot: Account,
        human: Human,
        dm_id: str,
        out: TextIO,
    ) -> None:
        self.mm = mm
        self.oc = oc
        self.bot = bot
        self.human = human
        self.dm_id = dm_id
        self.out = out

    def say(self, step: str) -> None:
        self.out.write(f"  - {step}\n")

    def _known(self) -> set[str]:
        return {p.id for p in self.mm.posts_in(self.dm_id)}

    async def bot_post(
        self, root_id: str, predicate: Callable[[Post], bool], known: set[str] | None = None
    ) -> Post:
        """The bot's first post in the main DM (``root_id=""``) or a thread that matches."""
        return await self.mm.wait_post(
            lambda p: (
                p.channel_id == self.dm_id
                and p.user_id == self.bot.id
                and p.root_id == root_id
                and (known is None or p.id not in known)
                and predicate(p)
            )
        )

    async def ask(self, message: str, root_id: str = "") -> Post:
        """Post ``message``; return the bot's next answer in the same place."""
        known = self._known()
        await self.human.post(self.dm_id, message, root_id=root_id)
        return await self.bot_post(root_id, lambda _: True, known)

    async def start_session(self, directory: Path, title: str) -> tuple[str, Post]:
        session = self.oc.create_session(str(directory), title)
        root = await self.mm.wait_post(
            lambda p: (
                p.channel_id == self.dm_id
                and not p.root_id
                and session_id_from_props(p.props) == session.id
            )
        )
        return session.id, root

    async def prompt_with_tools(self, session_id: str, root_id: str) -> None:
        prompt = await self.human.post(self.dm_id, PROMPT_A, root_id=root_id)
        card = await self.bot_post(root_id, lambda p: PERMISSION_PROP in p.props)
        await self.human.react(card.id, "white_check_mark")
        await self.mm.wait_post(lambda p: p.id == card.id and "**Approved once**" in p.message)
        await self._finished(session_id, root_id, prompt.id)

    async def prompt_plain(self, session_id: str, root_id: str) -> None:
        prompt = await self.human.post(self.dm_id, PROMPT_B, root_id=root_id)
        await self._finished(session_id, root_id, prompt.id)

    async def _finished(self, session_id: str, root_id: str, prompt_id: str) -> None:
        await self.mm.emulator.wait_reaction(prompt_id, "white_check_mark", user_id=self.bot.id)
        await self.oc.standin.wait_idle(session_id)
        await self.bot_post(root_id, lambda p: _DONE in p.message)

    def shown(self, owner_id: str) -> tuple[ShownPost, ...]:
        def author(user_id: str) -> str:
            return "mmthreads" if user_id == self.bot.id else "you" if user_id == owner_id else "?"

        def show(post: Post, replies: tuple[ShownPost, ...] = ()) -> ShownPost:
            reactions = tuple(
                f":{r.emoji_name}: ({author(r.user_id)})"
                for r in self.mm.emulator.state.reactions.get(post.id, [])
                if not r.delete_at
            )
            return ShownPost(author(post.user_id), post.message, reactions, replies)

        return tuple(
            show(root, tuple(show(reply) for reply in self.mm.thread(root.id)[1:]))
            for root in self.mm.posts_in(self.dm_id)
            if not root.root_id
        )


async def _scenario(stage: _Stage, shop: Path, docs: Path) -> None:
    stage.say(f"two OpenCode sessions start, in {shop.name} and in {docs.name}")
    session_a, root_a = await stage.start_session(shop, "Fix checkout rounding")
    session_b, root_b = await stage.start_session(docs, "Refresh the install guide")
    stage.say("you ask for !sessions, then type a prompt in the main DM")
    await stage.ask("!sessions")
    await stage.ask("please fix the failing tests")
    stage.say("you prompt both threads at once; the shell command in shop-api gets your ✅")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stage.prompt_with_tools, session_a, root_a.id)
        nursery.start_soon(stage.prompt_plain, session_b, root_b.id)
    stage.say(f"the {docs.name} session is deleted; you reply in its thread anyway")
    stage.oc.delete_session(session_b)
    await stage.bot_post(root_b.id, lambda p: p.message.startswith("**Session ended**"))
    await stage.ask("One more thing", root_b.id)
    stage.say("you ask for !status")
    await stage.ask("!status")


def _settings(
    home: Path, mm: MattermostServer, bot: Account, owner: Account, oc_url: str
) -> Settings:
    env = {
        "HOME": str(home),
        "MATTERMOST_URL": mm.url,
        "MATTERMOST_TOKEN": bot.token,
        "MATTERMOST_OWNER_USER_ID": owner.id,
        "OPENCODE_URL": oc_url,
    }
    flags: dict[str, object] = {
        "edit_interval": EDIT_INTERVAL,
        "mapping_file": str(home / "mattermost-threads.json"),
    }
    return load_settings(env=env, config_path=None, flags=flags)


async def _serve(
    settings: Settings,
    trigger: trio.Event,
    stopped: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await serve(settings, shutdown_trigger=trigger, task_status=task_status)
    finally:
        stopped.set()


def _connection_help(stage: _Stage, owner: Account, directory: Path) -> str:
    mm, oc = stage.mm.url, stage.oc.url
    return (
        "Everything stays up until Ctrl-C.  Connect a client to the emulator:\n"
        f"  Mattermost emulator:  {mm}  (WebSocket {stage.mm.websocket_url})\n"
        f"  you (@{owner.username}):  user id {owner.id}, token {owner.token}\n"
        f"  bot (@{stage.bot.username}):  user id {stage.bot.id}, token {stage.bot.token}\n"
        f"  the DM channel:  {stage.dm_id}\n"
        f"  OpenCode stand-in:  {oc}\n"
        "Any Mattermost client library works with the URL and a token (Client4, mattermostdriver);"
        " with curl:\n"
        f"  curl -H 'Authorization: Bearer {owner.token}' \\\n"
        f"       {mm}/api/v4/channels/{stage.dm_id}/posts\n"
        f"  curl -H 'Authorization: Bearer {owner.token}' -H 'Content-Type: application/json' \\\n"
        f'       -d \'{{"channel_id": "{stage.dm_id}", "message": "!sessions"}}\''
        f" {mm}/api/v4/posts\n"
        "Start another session (a new thread appears):\n"
        f"  curl -X POST -H 'Content-Type: application/json' -d '{{}}'"
        f" '{oc}/session?directory={directory}'\n"
    )


async def play_demo(
    out: TextIO, *, hold: Callable[[], Awaitable[None]] | None = None
) -> DemoResult:
    """Start the harness and the bridge, play the scenario, and print the DM to ``out``.

    Args:
        out: Where the narration and the DM are written.
        hold: With ``--keep-running``: awaited after the printout (with connection details
            written first) while everything stays up; the demo stops once it returns.

    Returns:
        The DM as shown.

    Raises:
        MmthreadsError: The scenario did not finish within ``DEMO_TIMEOUT`` seconds (the DM
            as far as it got is printed first).
    """
    with tempfile.TemporaryDirectory(prefix="mmthreads-demo-") as tmp:
        home = Path(tmp)
        shop, docs = home / "shop-api", home / "docs-site"
        shop.mkdir()
        docs.mkdir()
        out.write("mmthreads demo: Mattermost emulator + OpenCode stand-in + the bridge\n\n")
        async with (
            open_mattermost_emulator() as mm,
            open_opencode_standin(directory=str(shop), chunk_delay=CHUNK_DELAY) as oc,
        ):
            bot = mm.create_user("mmthreads", bot=True)
            owner = mm.create_user("alice")
            human = mm.human(owner)
            dm = await human.dm_with(bot)
            stage = _Stage(mm, oc, bot, human, dm.id, out)
            settings = _settings(home, mm, bot, owner, oc.url)
            trigger, stopped = trio.Event(), trio.Event()
            async with trio.open_nursery() as nursery:
                # A timeout is caught here, inside the nursery, so that the bridge still shuts
                # down gracefully and the caller gets one plain error instead of a group.
                with trio.move_on_after(DEMO_TIMEOUT) as limit:
                    await nursery.start(_serve, settings, trigger, stopped)
                    await _scenario(stage, shop, docs)
                roots = stage.shown(owner.id)
                text = render_dm(roots)
                out.write("\nThe DM with @mmthreads, as you see it (replies under their root):\n\n")
                out.write(text)
                if hold is not None and not limit.cancelled_caught:
                    out.write(_connection_help(stage, owner, shop))
                    out.flush()
                    await hold()
                trigger.set()
                with trio.move_on_after(settings.timeouts.graceful_timeout * 2):
                    await stopped.wait()
                nursery.cancel_scope.cancel()
    if limit.cancelled_caught:
        raise MmthreadsError(f"the demo did not finish within {DEMO_TIMEOUT:.0f} s")
    return DemoResult(roots=roots, text=text)


async def wait_for_signal() -> None:
    """Return at the first SIGINT or SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def run_demo(out: TextIO, *, keep_running: bool = False) -> int:
    """Run the demo (``mmthreads demo``) and return the exit code.

    Args:
        out: Where the DM is printed.
        keep_running: Keep everything up after the printout until SIGINT or SIGTERM.

    Returns:
        0.
    """
    hold = wait_for_signal if keep_running else None
    trio.run(partial(play_demo, out, hold=hold))
    if keep_running:
        out.write("demo stopped\n")
    return 0
