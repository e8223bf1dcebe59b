"""``!models`` and ``!model`` in a session's thread: the list, the choice, and prompts using it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import trio

from mmthreads.core.commands import COMMANDS, unknown_command_text
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback

LISTING = """\
**Models** (2, of the connected providers)
1. `stub/stub-model` — Stub Model · server default · **current**
2. `stub/stub-vision` — Stub Vision
Choose with `!model <number>` or `!model provider/model`; `!model default` goes back to the \
server's default."""


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


class _Model(msgspec.Struct):
    providerID: str  # OpenCode's wire names
    modelID: str


class _Prompt(msgspec.Struct):
    model: _Model | None = None


def _prompt_models(loopback: Loopback, session_id: str) -> list[tuple[str, str] | None]:
    """The model of every prompt the stand-in received for a session, in order."""
    models: list[tuple[str, str] | None] = []
    for request in loopback.oc.standin.requests:
        if request.method == "POST" and request.path == f"/session/{session_id}/prompt_async":
            body = msgspec.json.decode(request.body, type=_Prompt)
            models.append((body.model.providerID, body.model.modelID) if body.model else None)
    return models


class _Thread:
    """A session thread to ask commands in, one answer at a time."""

    def __init__(self, loopback: Loopback, root_id: str) -> None:
        self.loopback = loopback
        self.root_id = root_id
        self.seen = {p.id for p in loopback.mm.posts_in(loopback.dm_id)}

    async def ask(self, text: str) -> str:
        """Post ``text`` in the thread; return the bot's next new reply there."""
        asked = await self.loopback.human.post(self.loopback.dm_id, text, root_id=self.root_id)
        reply = await self.loopback.bot_reply(
            self.root_id, lambda p: p.create_at >= asked.create_at and p.id not in self.seen
        )
        self.seen.add(reply.id)
        return reply.message


async def test_models_lists_and_model_chooses_for_this_session(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        session = loopback.oc.create_session(loopback.directory, "pick a model")
        other = loopback.oc.create_session(loopback.directory, "keeps the default")
        root = await loopback.root_of(session.id)
        other_root = await loopback.root_of(other.id)
        thread = _Thread(loopback, root.id)

        assert await thread.ask("!models") == LISTING
        assert await thread.ask("!model") == (
            "Model: server default: `stub/stub-model` — Stub Model"
        )
        assert await thread.ask("!model 3") == (
            "**No such model**\n`3` is not a number from 1 to 2; `!models` lists them."
        )
        assert await thread.ask("!Model 2") == (
            "Model set to `stub/stub-vision` — Stub Vision; the next prompts use it."
        )
        assert await thread.ask("!model") == (
            "Model: `stub/stub-vision` — Stub Vision\n`!models` lists the others."
        )
        assert (await thread.ask("!models")).splitlines()[1:3] == [
            "1. `stub/stub-model` — Stub Model · server default",
            "2. `stub/stub-vision` — Stub Vision · **current**",
        ]
        mapping = await loopback.saved_mapping(session.id)
        assert mapping.model == "stub/stub-vision"

        # Prompts of that session carry the choice; the other session keeps the default.
        await loopback.human.post(loopback.dm_id, "which model?", root_id=root.id)
        await loopback.bot_reply(root.id, _is_done)
        await loopback.human.post(loopback.dm_id, "and you?", root_id=other_root.id)
        await loopback.bot_reply(other_root.id, _is_done)
        assert _prompt_models(loopback, session.id) == [("stub", "stub-vision")]
        assert _prompt_models(loopback, other.id) == [("stub", "stub-model")]

        # Back to the server's default.
        assert await thread.ask("!model default") == (
            "Model: back to the server default: `stub/stub-model`."
        )
        await loopback.human.post(loopback.dm_id, "now?", root_id=root.id)
        await loopback.bot_reply(root.id, lambda p: _is_done(p) and "now?" in p.message)
        assert _prompt_models(loopback, session.id)[-1] == ("stub", "stub-model")
        assert (await loopback.saved_mapping(session.id)).model == ""


async def test_model_commands_are_not_main_dm_commands(loopback: Loopback) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        asked = await loopback.human.post(loopback.dm_id, "!models")
        answer = await loopback.mm.wait_post(
            lambda p: p.user_id == loopback.bot.id and p.create_at >= asked.create_at
        )
        assert answer.message == unknown_command_text("models", COMMANDS)
        assert "works only in a session thread" in answer.message
