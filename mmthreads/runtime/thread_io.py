"""What a session runner takes in and does in the world: its inputs, turn keys and effects.

``mmthreads.runtime.session_runner`` runs one thread; the service implements
:class:`ThreadEffects` against Mattermost and OpenCode, and tests fake it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, TypeAlias

import msgspec

from mmthreads.core.agent_events import AgentEvent
from mmthreads.core.events import ThreadEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mmthreads.core.actions import Notice
    from mmthreads.core.agent_events import FilePart
    from mmthreads.core.events import PromptReceived
    from mmthreads.core.states import ThreadState

__all__ = ["ThreadEffects", "ThreadInput", "TurnKey", "wall_clock_ms"]

#: What a session runner accepts from the service: thread events and the session's agent events.
ThreadInput: TypeAlias = ThreadEvent | AgentEvent


def wall_clock_ms() -> int:
    """The wall clock in epoch milliseconds (turn times are shown to users)."""
    return time.time_ns() // 1_000_000


class TurnKey(msgspec.Struct, frozen=True, kw_only=True):
    """Which turn a ``show_turn`` call is about: the same key means "edit the same posts".

    Attributes:
        prompt_post_id: The post whose prompt started the turn.
        started_ms: When the prompt was forwarded (epoch ms); tells apart two turns of one post
            (a prompt sent again).
    """

    prompt_post_id: str
    started_ms: int


class ThreadEffects(Protocol):
    """What a runner does in the world; the service implements it, tests fake it.

    Each method is awaited before the runner takes its next input, so calls arrive in order.
    An exception ends the runner (see the module docstring): an implementation retries what is
    worth retrying and raises only when the thread cannot go on.
    """

    async def post_notice(self, session_id: str, notice: Notice) -> None:
        """Post ``notice`` in the session's thread."""

    async def reply_to_post(self, session_id: str, post_id: str, notice: Notice) -> None:
        """Answer the owner's post ``post_id`` in the session's thread with ``notice``."""

    async def forward_prompt(self, session_id: str, prompt: PromptReceived) -> bool:
        """Send ``prompt`` (text and files) to the session on its OpenCode server.

        Returns:
            Whether OpenCode took the prompt.  An expected refusal (the server said no, no
            part could be forwarded) returns False after telling the user; only then does the
            runner open no turn for it.
        """

    async def persist(self, session_id: str, status: ThreadState, ended_at_ms: int | None) -> None:
        """Record the thread's new status (and end time, for ``ENDED``) in the mapping file."""

    async def show_turn(
        self, session_id: str, turn_key: TurnKey, posts: list[str], *, final: bool = False
    ) -> None:
        """Show a turn's render (``TurnView.render``): post it on a new ``turn_key``, else edit.

        ``final`` says the render is the turn's last state (the turn finished).
        """

    async def share_files(self, session_id: str, files: Sequence[FilePart]) -> None:
        """Put files the agent produced (``file`` parts, each once) into the session's thread."""
