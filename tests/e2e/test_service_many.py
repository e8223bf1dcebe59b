"""Five sessions in five directories, prompted at the same moment: no cross-talk at all."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import trio

from mmthreads.harness.opencode.wire.messages import TextPart, UserMessage
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from pathlib import Path

    from mmthreads.harness.mattermost import Post
    from tests.e2e.conftest import Loopback

SESSIONS: Final = 5


def _reply_of(prompt: str) -> str:
    return f"Hello from the stub model! You said: {prompt}"


def _is_done(post: Post) -> bool:
    return ":checkered_flag: **Done**" in post.message


def _prompts_received(loopback: Loopback, session_id: str) -> list[str]:
    """The text of every user message the stand-in stored for the session."""
    texts: list[str] = []
    for record in loopback.oc.standin.state.messages.get(session_id, []):
        if isinstance(record.info, UserMessage):
            texts.append(
                "\n".join(
                    p.text for p in record.parts if isinstance(p, TextPart) and not p.synthetic
                )
            )
    return texts


async def test_five_sessions_prompted_at_once_never_mix(loopback: Loopback, tmp_path: Path) -> None:
    with trio.fail_after(WATCHDOG):
        await loopback.start()
        directories = [tmp_path / f"project-{n}" for n in range(SESSIONS)]
        for directory in directories:
            directory.mkdir()
        sessions = [
            loopback.oc.create_session(str(directory), f"session {n}")
            for n, directory in enumerate(directories)
        ]
        roots = [await loopback.root_of(s.id) for s in sessions]
        prompts = [f"prompt {n} for {s.id[-6:]} in project-{n}" for n, s in enumerate(sessions)]

        # Every prompt is posted at the same moment: one task per thread, all started in the
        # same scheduling batch.
        posted: dict[str, Post] = {}

        async def prompt_in(root: Post, text: str) -> None:
            posted[root.id] = await loopback.human.post(loopback.dm_id, text, root_id=root.id)

        async with trio.open_nursery() as nursery:
            for root, text in zip(roots, prompts, strict=True):
                nursery.start_soon(prompt_in, root, text)

        answers = [await loopback.bot_reply(root.id, _is_done) for root in roots]

        for session, root, prompt, answer in zip(sessions, roots, prompts, answers, strict=True):
            # The thread: exactly its root, its prompt and its answer.
            thread = loopback.mm.thread(root.id)
            assert [p.id for p in thread] == [root.id, posted[root.id].id, answer.id]
            assert thread[1].message == prompt
            assert thread[1].user_id == loopback.owner.id
            assert answer.user_id == loopback.bot.id
            # The answer's text block is exactly this thread's reply, and nobody else's.
            blocks = answer.message.split("\n\n")
            replies = [b for b in blocks if b.startswith("Hello from the stub model!")]
            assert replies == [_reply_of(prompt)], answer.message
            others = [p for p in prompts if p != prompt]
            assert not any(other in answer.message for other in others), answer.message
            # The session received exactly its own prompt.
            assert _prompts_received(loopback, session.id) == [prompt]

        # No post landed anywhere else: the DM holds the five roots and their replies only.
        by_root = {root.id: root for root in roots}
        dm_posts = loopback.mm.posts_in(loopback.dm_id)
        assert len(dm_posts) == 3 * SESSIONS
        assert len(loopback.mm.emulator.state.posts) == 3 * SESSIONS  # none in other channels
        assert {p.id for p in dm_posts if not p.root_id} == set(by_root)
        for post in dm_posts:
            if post.root_id:
                assert post.root_id in by_root
                assert post.id in {p.id for p in loopback.mm.thread(post.root_id)}
