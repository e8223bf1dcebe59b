"""Completing an answer the bridge was streaming when it stopped, from OpenCode's history.

Theory of operation
-------------------
Every answer post carries, in its ``props``, the turn it shows: the prompt post's id
(:data:`TURN_PROMPT_PROP`), when the prompt was forwarded (:data:`TURN_STARTED_PROP`), its
number among the turn's posts (:data:`TURN_PART_PROP`, 0 for the first, then continuations)
and, once the turn's last state was shown, :data:`TURN_FINAL_PROP`.  The mapping file does not
change.

When a thread is re-attached (the bridge started again, or an OpenCode stream came back),
:func:`recover_answer` reads the thread, takes the newest turn's posts and, if they are not
final, rebuilds the turn from the session's recent history with :func:`turn_from_history`:

* the session is idle: the posts are edited to the completed render (or, if the last assistant
  message ended without a ``finish``, to what was written plus a plain "interrupted" line);
* the session is still busy: the rebuilt view and its posts are handed back to the thread's
  runner, which keeps streaming into the same posts from the live events.

The history's snapshots are the server's full truth, so the rebuilt text is exact whatever the
chat saw before the stop.  Two limits: deltas the stream delivered while the history was being
read are applied again on top of it until the part's next snapshot (OpenCode sends one when a
part ends), and the turn is found by time, so OpenCode's clock must not run behind the
bridge's (true when both run on one machine).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from mmthreads.core.agent_events import (
    MessageUpdated,
    PartUpdated,
    SessionError,
    SessionStatus,
)
from mmthreads.core.turn import TurnView
from mmthreads.errors import AgentError, ChatError
from mmthreads.runtime.session_runner import TurnKey

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mmthreads.mapping import ThreadMapping
    from mmthreads.runtime.effects import ServiceEffects
    from mmthreads.runtime.session_runner import SessionHandle
    from mmthreads.wire.mattermost import Post
    from mmthreads.wire.opencode_normalise import HistoryMessage

__all__ = [
    "HISTORY_LIMIT",
    "INTERRUPTED",
    "TURN_FINAL_PROP",
    "TURN_PART_PROP",
    "TURN_PROMPT_PROP",
    "TURN_STARTED_PROP",
    "recover_answer",
    "resume_unshown",
    "turn_from_history",
    "turn_props",
]

logger = logging.getLogger(__name__)

#: The answer post's prop naming the prompt post whose turn it shows.
TURN_PROMPT_PROP: Final = "mmthreads_turn_prompt_post_id"
#: When that prompt was forwarded (epoch ms, as a string: Mattermost keeps props as JSON).
TURN_STARTED_PROP: Final = "mmthreads_turn_started_ms"
#: The post's number among the turn's posts (0: the first, then continuations).
TURN_PART_PROP: Final = "mmthreads_turn_part"
#: Present (``"true"``) once the turn's last state is shown.
TURN_FINAL_PROP: Final = "mmthreads_turn_final"
#: How many of a session's newest messages are read to rebuild a turn.
HISTORY_LIMIT: Final = 50
#: The error name shown for an answer that ended without finishing.
INTERRUPTED: Final = "Interrupted"
_INTERRUPTED_TEXT: Final = (
    "the answer stopped before it finished (OpenCode or the bridge restarted)"
)


def turn_props(key: TurnKey, part: int, *, final: bool) -> dict[str, object]:
    """The props of one of a turn's posts (see the module docstring).

    Args:
        key: The turn.
        part: The post's number among the turn's posts.
        final: Whether the render shown is the turn's last state.

    Returns:
        The whole props map of the post.
    """
    props: dict[str, object] = {
        TURN_PROMPT_PROP: key.prompt_post_id,
        TURN_STARTED_PROP: str(key.started_ms),
        TURN_PART_PROP: str(part),
    }
    if final:
        props[TURN_FINAL_PROP] = "true"
    return props


def turn_from_history(
    history: Sequence[HistoryMessage], prompt_time: int, *, running: bool = False
) -> TurnView:
    """Rebuild the view of the turn whose prompt was forwarded at ``prompt_time``.

    The turn is every message from the first user message created at or after
    ``prompt_time`` on (prompts queued behind it run without an idle between, so they belong
    to the same shown turn, as they do live).

    Args:
        history: The session's newest messages, oldest first (``OpenCodeClient.messages``).
        prompt_time: When the bridge forwarded the prompt (epoch ms); the view starts there.
        running: Whether the session is still busy: then an unfinished last message is left
            running instead of being marked as interrupted.

    Returns:
        The view: finished at the last assistant message's completion when that message has a
        ``finish`` (or an error), finished with an "interrupted" error line when it has neither
        and the session is not running, else still running.
    """
    session_id = history[0].info.session_id if history else ""
    view = TurnView(session_id, started_ms=prompt_time)
    start = next(
        (
            i
            for i, message in enumerate(history)
            if message.info.role == "user" and message.info.created_ms >= prompt_time
        ),
        None,
    )
    if start is None:
        return view
    turn = history[start:]
    for message in turn:
        view.apply(message.info, message.info.created_ms)
        for part in message.parts:
            view.apply(PartUpdated(session_id=session_id, part=part), message.info.created_ms)
    answers = [m.info for m in turn if m.info.role == "assistant"]
    if not answers:
        return view
    last = answers[-1]
    end_ms = last.completed_ms or max(last.created_ms, prompt_time)
    if _finished(last):
        view.apply(SessionStatus(session_id=session_id, status="idle"), end_ms)
    elif not running:
        interrupted = SessionError(
            session_id=session_id, name=INTERRUPTED, message=_INTERRUPTED_TEXT
        )
        view.apply(interrupted, end_ms)
        view.apply(SessionStatus(session_id=session_id, status="idle"), end_ms)
    return view


def _finished(info: MessageUpdated) -> bool:
    # "tool-calls" means another step follows; an error (an abort included) ends the turn.
    return bool(info.error_name) or (
        info.completed_ms is not None and info.finish not in ("", "tool-calls")
    )


def _newest_turn(posts: Sequence[Post], bot_user_id: str) -> tuple[TurnKey, list[Post]] | None:
    """The newest turn shown in a thread, and its posts in order (None: no turn shown)."""
    turns: dict[TurnKey, list[Post]] = {}
    for post in posts:
        prompt = post.props.get(TURN_PROMPT_PROP)
        started = post.props.get(TURN_STARTED_PROP)
        if post.user_id != bot_user_id or post.delete_at or not isinstance(prompt, str):
            continue
        try:
            key = TurnKey(prompt_post_id=prompt, started_ms=int(str(started)))
        except ValueError:
            continue
        turns.setdefault(key, []).append(post)
    if not turns:
        return None
    key = max(turns, key=lambda k: k.started_ms)
    return key, sorted(turns[key], key=lambda p: _part_number(p))


def _part_number(post: Post) -> int:
    try:
        return int(str(post.props.get(TURN_PART_PROP, "0")))
    except ValueError:
        return 0


async def recover_answer(
    effects: ServiceEffects, session_id: str, *, busy: bool, handle: SessionHandle | None
) -> bool:
    """Complete the thread's newest answer if the bridge stopped before showing its end.

    Args:
        effects: The service's effects (the bridge, and the turns' posts).
        session_id: The re-attached session.
        busy: Whether OpenCode reports the session busy (then the turn goes on streaming).
        handle: The session's runner, which then shows the turn and takes its live events;
            without one the posts are edited here.

    Returns:
        Whether an unfinished answer was found (and completed or resumed).
    """
    bridge = effects.bridge
    mapping = bridge.index.get(session_id)
    if mapping is None:
        return False
    try:
        thread = await bridge.chat.get_thread(mapping.thread_root_post_id)
    except ChatError as exc:
        logger.warning("session %s: cannot read its thread: %s", session_id, exc)
        return False
    newest = _newest_turn(thread.in_order(), bridge.bot_user_id)
    if newest is None:
        return False
    key, posts = newest
    if posts[0].props.get(TURN_FINAL_PROP):
        return False
    view = await _rebuild(effects, mapping, key, busy=busy)
    if view is None:
        return False
    effects.adopt_turn(session_id, key, [(post.id, post.message) for post in posts])
    what = "completing" if view.is_finished else "resuming"
    logger.info("session %s: %s the answer to %s", session_id, what, key.prompt_post_id)
    if handle is not None:
        # Through the runner, so its own view of the turn (after a reconnect) is replaced
        # and a running turn takes the live events.
        return await _hand_back(handle, key, view)
    await effects.show_turn(
        session_id, key, view.render(bridge.max_post_size), final=view.is_finished
    )
    return True


async def resume_unshown(
    effects: ServiceEffects, session_id: str, key: TurnKey, *, busy: bool, handle: SessionHandle
) -> bool:
    """Rebuild from history a running turn that showed nothing before the stream dropped.

    Its first output went with the events the stream lost, so no post of it exists to find;
    the runner knows the turn, and gets it back complete (idle) or resumed (busy).

    Returns:
        Whether the turn was handed back to the runner.
    """
    mapping = effects.bridge.index.get(session_id)
    if mapping is None:
        return False
    view = await _rebuild(effects, mapping, key, busy=busy)
    if view is None:
        return False
    logger.info("session %s: rebuilding the answer to %s", session_id, key.prompt_post_id)
    return await _hand_back(handle, key, view)


async def _rebuild(
    effects: ServiceEffects, mapping: ThreadMapping, key: TurnKey, *, busy: bool
) -> TurnView | None:
    """The turn ``key`` rebuilt from the session's history; None if it cannot be trusted."""
    session_id = mapping.session_id
    try:
        history = await effects.bridge.server_of(mapping).messages(
            session_id, mapping.directory, limit=HISTORY_LIMIT
        )
    except AgentError as exc:
        logger.warning("session %s: cannot read its history: %s", session_id, exc)
        return None
    view = turn_from_history(history, key.started_ms, running=busy)
    if not busy and not view.is_finished:
        # Not even the turn's prompt is in the history: nothing reliable to show.
        logger.warning("session %s: the answer to %s is not in its history", session_id, key)
        return None
    return view


async def _hand_back(handle: SessionHandle, key: TurnKey, view: TurnView) -> bool:
    try:
        await handle.resume_turn(key, view)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True
