"""What the session threads do in the world: the service's side of ``ThreadEffects``.

The session runners (``mmthreads.runtime.session_runner``) decide *what* to do; this module does
it against the real servers. :class:`ServiceEffects` implements the runners' effects on top of
the :class:`~mmthreads.runtime.bridge.Bridge` (clients, identity, the mapping index and file):

* a file the agent produced (a ``file`` part, or a completed tool's attachment) is uploaded into
  the thread once, if OpenCode sent it inline (a ``data:`` URI) and within the size limit;

* every write to Mattermost is queued in the bridge's :class:`~mmthreads.runtime.outbox.Outbox`
  and carried out in order per thread, so a runner never waits for Mattermost;
* notices and replies are posted in the session's thread;
* a prompt (its text and attached files, as data URIs) goes to OpenCode with ``prompt_async``,
  the session's directory and an explicit model (the session's choice, else the server's
  default from ``GET /provider``), and is acknowledged with a reaction on the owner's post; a
  refused prompt is answered in the thread with the reason, a file that cannot be forwarded
  with a notice;
* a status change is written to the mapping file;
* a turn is shown by creating its posts the first time and editing them afterwards; parts added
  by a longer render become continuation posts (the runner limits how often this is called).
  Each post names its turn in its props, and the first is marked final with the turn's last
  render, so a restarted bridge can find and complete an unfinished answer
  (``mmthreads.runtime.recovery``).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Final

import msgspec

from mmthreads.core.actions import DisconnectedNotice, ReconnectedNotice
from mmthreads.core.files import decode_data_uri, refusal, safe_filename
from mmthreads.core.render import render_notice
from mmthreads.core.states import ThreadState
from mmthreads.errors import AgentError, ChatError, ChatFileTooLarge
from mmthreads.mapping import iso_timestamp
from mmthreads.runtime.outbox import Delayed, PostRef, Priority
from mmthreads.runtime.recovery import turn_props
from mmthreads.wire.opencode_rest import FilePartInput, TextPartInput

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mmthreads.core.actions import Notice
    from mmthreads.core.agent_events import FilePart
    from mmthreads.core.events import PromptReceived
    from mmthreads.mapping import ThreadMapping
    from mmthreads.runtime.bridge import Bridge
    from mmthreads.runtime.session_runner import TurnKey
    from mmthreads.wire.opencode_rest import PartInput

__all__ = [
    "ACK_EMOJI",
    "FILE_NOT_SENT",
    "FILE_NOT_SHARED",
    "PROMPT_NOT_SENT",
    "ServiceEffects",
]

logger = logging.getLogger(__name__)

#: The reaction that tells the user their prompt reached OpenCode.
ACK_EMOJI: Final = "white_check_mark"
#: The heading of the reply to a prompt OpenCode did not take; the reason follows.
PROMPT_NOT_SENT: Final = ":warning: **Prompt not sent**"
#: The heading of the notice about an attached file that could not be forwarded.
FILE_NOT_SENT: Final = ":warning: **File not sent**"
#: The heading of the notice about a file of the agent's that could not be uploaded.
FILE_NOT_SHARED: Final = ":warning: **File not uploaded**"
_FINAL: Final = frozenset({ThreadState.ENDED, ThreadState.ORPHANED})


class ServiceEffects:
    """The session runners' effects (``session_runner.ThreadEffects``) against the real servers.

    Every Mattermost write is queued in the bridge's :class:`~mmthreads.runtime.outbox.Outbox`
    (in the thread's lane, so the thread reads in order) and the runner goes on at once: a
    runner waits for OpenCode and the mapping file, never for Mattermost.

    Args:
        bridge: The shared service state.
        on_final: Called with the session id once a thread reached a final state (the
            registry then closes its runner).
    """

    #: How many turns per session keep their posts (older turns are never edited again).
    KEPT_TURNS: Final = 4

    def __init__(self, bridge: Bridge, *, on_final: Callable[[str], None] | None = None) -> None:
        self.bridge: Final = bridge
        self._on_final = on_final
        # Per session, per turn: the [post, text shown] of each of the turn's posts.
        self._turn_posts: dict[str, dict[TurnKey, list[_Shown]]] = {}
        self._held: dict[str, Delayed] = {}  # "disconnected" notices not posted yet
        self._open_turns: dict[str, set[TurnKey]] = {}  # shown, but not as final yet

    def __repr__(self) -> str:
        return f"<ServiceEffects sessions={len(self._turn_posts)}>"

    def _mapping(self, session_id: str) -> ThreadMapping:
        mapping = self.bridge.index.get(session_id)
        if mapping is None:  # pragma: no cover - runners exist only for mapped sessions
            raise LookupError(f"no mapping for session {session_id}")
        return mapping

    def post_in_thread(
        self,
        mapping: ThreadMapping,
        message: str,
        *,
        props: dict[str, object] | None = None,
        priority: Priority = Priority.URGENT,
    ) -> PostRef:
        """Queue a reply in the session's thread (see :class:`~mmthreads.runtime.outbox.Outbox`)."""
        return self.bridge.outbox.post(
            mapping.dm_channel_id,
            message,
            root_id=mapping.thread_root_post_id,
            props=props,
            priority=priority,
        )

    async def post_notice(self, session_id: str, notice: Notice) -> None:
        """Post a lifecycle notice in the session's thread.

        A "disconnected" notice is held back for ``disconnect_notice_delay`` seconds: the next
        notice of the thread calls it off if it was not posted yet, and a "reconnected" notice
        that called it off is not posted either (the user saw no gap, so nothing to close).
        """
        mapping = self._mapping(session_id)
        text = render_notice(notice, mapping=mapping)
        held = self._held.pop(session_id, None)
        delay = self.bridge.disconnect_notice_delay
        if isinstance(notice, DisconnectedNotice) and delay > 0:
            self._held[session_id] = self.bridge.outbox.post_later(
                delay, mapping.dm_channel_id, text, root_id=mapping.thread_root_post_id
            )
            return
        if held is not None and held.cancel() and isinstance(notice, ReconnectedNotice):
            logger.info("session %s: its server was back within %.3g s", session_id, delay)
            return
        self.post_in_thread(mapping, text)

    async def reply_to_post(self, session_id: str, post_id: str, notice: Notice) -> None:
        """Answer an owner's post; replies live in the thread (Mattermost has no sub-threads)."""
        mapping = self._mapping(session_id)
        self.post_in_thread(mapping, render_notice(notice, mapping=mapping))

    async def forward_prompt(self, session_id: str, prompt: PromptReceived) -> bool:
        """Send a prompt with an explicit model, then acknowledge it with a reaction.

        A prompt OpenCode refused is answered in the thread with the reason; it does not end
        the runner (the thread itself is fine).

        Returns:
            Whether the prompt was sent (False: refused, or nothing could be forwarded).
        """
        mapping = self._mapping(session_id)
        client = self.bridge.server_of(mapping)
        parts: list[PartInput] = [TextPartInput(text=prompt.text)] if prompt.text else []
        for file_id in prompt.file_ids:
            part = await self._file_part(mapping, file_id)
            if part is not None:
                parts.append(part)
        if not parts:
            return False  # nothing could be forwarded; the user was told why, file by file
        try:
            model = await self.bridge.model_for(mapping)
            await client.prompt_async(session_id, mapping.directory, parts, model)
        except AgentError as exc:
            logger.warning("session %s: prompt %s not sent: %s", session_id, prompt.post_id, exc)
            self.post_in_thread(mapping, f"{PROMPT_NOT_SENT}\n{exc}")
            return False
        logger.info("session %s: prompt %s sent", session_id, prompt.post_id)
        self.bridge.prompt_sent.set()
        self.bridge.outbox.react(
            mapping.thread_root_post_id, PostRef(prompt.post_id), self.bridge.bot_user_id, ACK_EMOJI
        )
        changes = {"last_prompt": prompt.text, "last_activity_at": _iso_now()}
        # Read again: the mapping may have changed while the prompt was sent (``!model``).
        current = self._mapping(session_id)
        await self.bridge.update_mapping(msgspec.structs.replace(current, **changes))
        return True

    async def _file_part(self, mapping: ThreadMapping, file_id: str) -> FilePartInput | None:
        """An attached file as a prompt part (a data URI), or None after telling the user.

        The file must fit ``max_file_size`` and be something the session's model can take
        (``core.files.refusal``); its name is made safe before OpenCode sees it.
        """
        chat = self.bridge.chat
        limit = self.bridge.max_file_size
        try:
            info = await chat.get_file_info(file_id)
            name = safe_filename(info.name)
            if info.size > limit:
                raise ChatFileTooLarge(file_id, limit)
            mime = info.mime_type or "application/octet-stream"
            why = refusal(mime, await self.bridge.model_info(mapping))
            if why is not None:
                self.post_in_thread(mapping, f"{FILE_NOT_SENT}\n`{name}` was left out: {why}.")
                return None
            data = await chat.get_file(file_id, max_bytes=limit)
        except ChatFileTooLarge:
            self.post_in_thread(
                mapping, f"{FILE_NOT_SENT}\nA file is larger than {limit} bytes; it was left out."
            )
            return None
        except ChatError as exc:
            logger.warning("cannot fetch file %s: %s", file_id, exc)
            self.post_in_thread(mapping, f"{FILE_NOT_SENT}\n{exc}")
            return None
        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return FilePartInput(mime=mime, url=url, filename=name)

    async def share_files(self, session_id: str, files: Sequence[FilePart]) -> None:
        """Upload files the agent produced into the thread, one post each.

        Only ``data:`` URIs are uploaded (``core.files.decode_data_uri``): a file OpenCode only
        names by path or URL is never read, and one over ``max_file_size`` is not uploaded;
        both are said in the thread.
        """
        mapping = self._mapping(session_id)
        limit = self.bridge.max_file_size
        for part in files:
            name = safe_filename(part.filename)
            decoded = decode_data_uri(part.url, max_bytes=limit)
            if decoded is None:
                why = (
                    f"it is larger than {limit} bytes"
                    if part.url.startswith("data:")
                    else "OpenCode named it by a path, which the bridge does not read"
                )
                self.post_in_thread(mapping, f"{FILE_NOT_SHARED}\n`{name}`: {why}.")
                continue
            self.bridge.outbox.post(
                mapping.dm_channel_id,
                f":paperclip: `{name}`",
                root_id=mapping.thread_root_post_id,
                upload=(name, decoded[1]),
            )

    async def persist(self, session_id: str, status: ThreadState, ended_at_ms: int | None) -> None:
        """Write the thread's new status (and end time) to the mapping file."""
        mapping = self._mapping(session_id)
        changes: dict[str, object] = {"status": status, "last_activity_at": _iso_now()}
        if ended_at_ms is not None:
            changes["ended_at"] = iso_timestamp(ended_at_ms / 1000)
        await self.bridge.update_mapping(msgspec.structs.replace(mapping, **changes))
        if status in _FINAL and self._on_final is not None:
            self._on_final(session_id)

    async def show_turn(
        self, session_id: str, turn_key: TurnKey, posts: list[str], *, final: bool = False
    ) -> None:
        """Queue the turn's posts the first time, then edits of them; add continuations.

        The first post of a turn and its final render are urgent, renders in between are
        progress (the outbox coalesces them under pressure).  Each post carries the turn in
        its props (``recovery.turn_props``), so a restarted bridge finds an answer it did not
        finish; the first post is marked final with the turn's last render.
        """
        mapping = self._mapping(session_id)
        lane = mapping.thread_root_post_id
        outbox = self.bridge.outbox
        turns = self._turn_posts.setdefault(session_id, {})
        shown = turns.setdefault(turn_key, [])
        while len(turns) > self.KEPT_TURNS:
            del turns[next(iter(turns))]
        open_turns = self._open_turns.setdefault(session_id, set())
        if final:
            open_turns.discard(turn_key)
        else:
            open_turns.add(turn_key)
        priority = Priority.URGENT if final else Priority.PROGRESS
        for number, text in enumerate(posts):
            mark = final and number == 0
            if number < len(shown) and not shown[number].post.failed:
                entry = shown[number]
                if text != entry.text or mark:
                    props = turn_props(turn_key, number, final=True) if mark else None
                    outbox.edit(lane, entry.post, message=text, props=props, priority=priority)
                    entry.text = text
                continue
            urgent = final or (number == 0 and not shown)
            ref = self.post_in_thread(
                mapping,
                text,
                props=turn_props(turn_key, number, final=mark),
                priority=Priority.URGENT if urgent else Priority.PROGRESS,
            )
            if number < len(shown):
                shown[number] = _Shown(ref, text)  # its create was refused: posted anew
            else:
                shown.append(_Shown(ref, text))

    def adopt_turn(self, session_id: str, turn_key: TurnKey, posts: list[tuple[str, str]]) -> None:
        """Take over a turn's existing posts (``[(post id, text shown)]``), found after a restart.

        The next :meth:`show_turn` of ``turn_key`` edits them instead of posting anew.
        """
        turns = self._turn_posts.setdefault(session_id, {})
        turns[turn_key] = [_Shown(PostRef(post_id), text) for post_id, text in posts]
        self._open_turns.setdefault(session_id, set()).add(turn_key)

    def note_new_thread(self, session_id: str) -> None:
        """A thread this process just made: it holds no answer from before."""
        self._turn_posts.setdefault(session_id, {})

    def may_have_unfinished(self, session_id: str) -> bool:
        """Whether the thread may show an answer whose end was not shown.

        True until this process has shown a turn of the session (the thread may hold one from
        before a restart), then only while a turn it showed is not final.
        """
        if session_id not in self._turn_posts:
            return True
        return bool(self._open_turns.get(session_id))

    def forget(self, session_id: str) -> None:
        """Drop what is kept about a session's turns (its thread has ended)."""
        self._turn_posts.pop(session_id, None)
        self._open_turns.pop(session_id, None)
        self._held.pop(session_id, None)


class _Shown:
    """One post of a turn: the post, and the text last queued for it."""

    __slots__ = ("post", "text")

    def __init__(self, post: PostRef, text: str) -> None:
        self.post = post
        self.text = text


def _iso_now() -> str:
    return iso_timestamp(time.time())
