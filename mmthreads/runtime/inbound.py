"""The Mattermost side at run time: every post in the bot's DMs, routed and answered.

:class:`ChatInbound` consumes the WebSocket's chat events. Each new post goes through the pure
:func:`~mmthreads.core.router.route`; the decision is carried out here: commands are answered in
the main DM, refusals and unknown threads get the spec's texts, a post in an ended thread gets
"Session ended", and a prompt goes to exactly its session's runner. The owner's reactions in a
session's thread answer its pending permission (✅ once, ♾️ always, ❌ reject; see
``mmthreads.runtime.controls``), abort its run (🛑) or send the thread's last prompt again (🔁);
each is confirmed in the thread (a permission by the edit of its card). While a question or a
reject's reason is awaited in a thread, a reply there is that answer, not a prompt.

Every post is handled exactly once: the :class:`~mmthreads.runtime.cursor.InboundCursor` records
the posts handled. When the WebSocket connects for the first time (start-up) or comes back
without resuming, events of the gap are lost: the posts of every owner DM created since the
cursor are fetched over REST and routed like live ones, oldest first.

An owner's posts pass a flood limit (:class:`~mmthreads.core.flood.FloodGate`) before anything
is done with them: past the burst they are dropped, and the first dropped post of a flood gets
one notice where it was written. Commands typed in a session's thread (``!models``, ``!model``)
are carried out by ``mmthreads.runtime.thread_commands``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

from mmthreads.core.chat_events import (
    ChatConnected,
    ChatDisconnected,
    PostCreated,
    ReactionChanged,
)
from mmthreads.core.commands import (
    COMMANDS,
    CommandContext,
    Lane,
    ServerStatus,
    StatusSnapshot,
    answer_command,
    unknown_command_text,
)
from mmthreads.core.events import PromptReceived
from mmthreads.core.flood import FloodGate, flood_notice
from mmthreads.core.render import PROMPT_REFUSED, SESSION_ENDED, THREAD_NOT_RECOGNIZED
from mmthreads.core.router import (
    Ignored,
    Prompt,
    RefusePrompt,
    RunCommand,
    SenderInfo,
    SessionEnded,
    UnknownCommand,
    UnknownThread,
    route,
)
from mmthreads.core.states import ThreadState
from mmthreads.errors import AgentError, ChatError
from mmthreads.runtime.bridge import now_ms
from mmthreads.runtime.cursor import InboundCursor, cursor_path
from mmthreads.runtime.thread_commands import run_thread_command
from mmthreads.settings import FloodSettings

if TYPE_CHECKING:
    import trio

    from mmthreads.core.chat_events import ChatEvent
    from mmthreads.mapping import ThreadMapping
    from mmthreads.runtime.sessions import SessionRegistry
    from mmthreads.runtime.startup import ChatIdentity
    from mmthreads.runtime.status import ServerTracker
    from mmthreads.wire.mattermost import Post

__all__ = ["ChatInbound"]

logger = logging.getLogger(__name__)

# Reaction emoji -> what it does: a permission reply (OpenCode's word), "abort" or "repeat".
_REACTIONS: Final = {
    "white_check_mark": "once",
    "infinity": "always",
    "x": "reject",
    "octagonal_sign": "abort",
    "repeat": "repeat",
}
_PERMISSION_REPLIES: Final = frozenset({"once", "always", "reject"})
#: A ``since`` query answers at most this many posts (reference §1.7).
_SINCE_CAP: Final = 1000
_LIVE: Final = frozenset({ThreadState.ACTIVE, ThreadState.DISCONNECTED})
_NOT_FOLLOWED: Final = (
    "**Session not available**\nThe bridge is not following this session right now; "
    "try again in a moment or use `!sessions`."
)


class ChatInbound:
    """Routes the bot's DM posts and answers them.

    Args:
        identity: The bot, its owners and their DMs.
        registry: The session runners (prompts go there).
        mapping_path: Shown by ``!status``.
        cursor: The posts already handled (an in-memory one starting now when omitted).
        servers: The OpenCode servers' states for ``!status`` (else only "connected").
        flood: The flood limit on the owners' posts (default: ``FloodSettings()``'s).
    """

    def __init__(
        self,
        identity: ChatIdentity,
        registry: SessionRegistry,
        *,
        mapping_path: str,
        cursor: InboundCursor | None = None,
        servers: ServerTracker | None = None,
        flood: FloodSettings | None = None,
    ) -> None:
        self.identity: Final = identity
        self.registry: Final = registry
        self._auth = identity.auth
        self._mapping_path = mapping_path
        self.connected = False
        self._since_ms: int | None = None
        self.cursor: Final = cursor or InboundCursor(
            cursor_path(Path(mapping_path)), start_ms=now_ms()
        )
        self._servers = servers
        limits = flood if flood is not None else FloodSettings()
        self.flood: Final = FloodGate(burst=limits.burst, refill_interval=limits.refill_interval)

    def __repr__(self) -> str:
        return f"<ChatInbound connected={self.connected}>"

    async def consume(self, receive: trio.MemoryReceiveChannel[ChatEvent]) -> None:
        """Handle chat events until the channel closes."""
        async with receive:
            async for event in receive:
                try:
                    await self.handle(event)
                except ChatError as exc:
                    logger.warning("cannot answer a chat event: %s", exc)

    async def handle(self, event: ChatEvent) -> None:
        """Handle one chat event."""
        match event:
            case ChatConnected(resumed=resumed):
                self.connected, self._since_ms = True, now_ms()
                if not resumed:
                    await self.catch_up()
            case ChatDisconnected(code=code, reason=reason):
                self.connected, self._since_ms = False, now_ms()
                logger.warning("Mattermost WebSocket lost (%d %s)", code, reason)
            case PostCreated(post=post, channel_type=kind, sender_name=name):
                await self.on_post(post, SenderInfo(channel_type=kind, sender_name=name))
            case ReactionChanged(added=True):
                await self.on_reaction(event)
            case _:
                pass

    async def catch_up(self) -> None:
        """Route the owner DMs' posts created since the cursor (missed while not listening)."""
        chat = self.registry.bridge.chat
        for channel_id in self.identity.dm_channels.values():
            # ``since`` is exclusive; one millisecond earlier also brings the posts sharing the
            # cursor's millisecond, which the cursor tells apart by id.
            query = max(self.cursor.since(channel_id) - 1, 0)
            posts: dict[str, Post] = {}
            while True:
                batch = (await chat.get_posts_since(channel_id, query)).in_order()
                posts.update((post.id, post) for post in batch)
                # The answer is capped (§1.7) and not paged: go on from its newest change,
                # one millisecond early again; the overlap is told apart by id.
                newest = max((post.update_at for post in batch), default=0) - 1
                if len(batch) < _SINCE_CAP or newest <= query:
                    break
                query = newest
            missed = self.cursor.missed(channel_id, list(posts.values()))
            if missed:
                logger.info("catching up %d missed post(s) in %s", len(missed), channel_id)
            for post in missed:
                await self.on_post(post, None)

    async def on_post(self, post: Post, sender: SenderInfo | None) -> None:
        """Route one post and carry the decision out (once: a handled post is skipped)."""
        if not self.cursor.is_new(post):
            return
        self.cursor.mark(post)
        bridge = self.registry.bridge
        decision = route(post, threads=bridge.index, auth=self._auth, sender=sender)
        if not isinstance(decision, Ignored) and not await self._admit(post):
            return
        match decision:
            case Ignored(reason=reason):
                if post.user_id != self.identity.bot_user_id:
                    logger.info("ignored post %s: %s", post.id, reason.value)
            case RunCommand(command=name, args=args, session_id=session_id):
                context = self._context(post.user_id)
                if session_id:
                    answer = await run_thread_command(bridge, session_id, name, args, context)
                else:
                    answer = answer_command(name, args, context, lane=Lane.MAIN_DM)
                await self._answer(post, answer)
            case UnknownCommand(command=name):
                await self._answer(post, unknown_command_text(name, COMMANDS))
            case RefusePrompt():
                await self._answer(post, PROMPT_REFUSED)
            case UnknownThread():
                await self._answer(post, THREAD_NOT_RECOGNIZED)
            case SessionEnded():
                await self._answer(post, SESSION_ENDED)
            case Prompt(session_id=session_id, text=text, file_ids=file_ids, post_id=post_id):
                # While a question or a reject's reason is awaited, the reply is that answer.
                if await self.registry.controls.intercept(session_id, post):
                    return
                prompt = PromptReceived(
                    post_id=post_id, text=text, file_ids=file_ids, at_ms=post.create_at
                )
                if not await self.registry.deliver(session_id, prompt):
                    logger.warning("prompt %s for %s: no runner", post_id, session_id)
                    await self._answer(post, _NOT_FOLLOWED)

    async def on_reaction(self, event: ReactionChanged) -> None:
        """Carry out an owner's reaction on a post of an active session's thread."""
        action = _REACTIONS.get(event.emoji_name)
        if (
            action is None
            or event.user_id == self.identity.bot_user_id
            or event.user_id not in self._auth.owner_user_ids
            or (event.channel_id and event.channel_id not in self._auth.dm_channel_ids)
        ):
            return
        bridge = self.registry.bridge
        post = await bridge.chat.get_post(event.post_id)
        mapping = bridge.index.by_thread_root(post.root_id or post.id)
        # Reactions are authorized exactly like prompts: the owner of that session, in its DM.
        if (
            mapping is None
            or mapping.mattermost_user_id != event.user_id
            or mapping.dm_channel_id != post.channel_id
        ):
            logger.info("reaction %s on %s ignored", event.emoji_name, event.post_id)
            return
        if mapping.status not in _LIVE:
            # Answered like a post in an ended thread.
            self._reply_in_thread(mapping, SESSION_ENDED)
            return
        if action in _PERMISSION_REPLIES:
            # The card's edit confirms the answer; a reply only when there is no card to edit.
            reply = await self.registry.controls.react(
                mapping, action, event.post_id, event.user_id
            )
            answer = reply if reply is not None else ""
        else:
            answer = await self._react(mapping, action, event.post_id)
        if answer:
            self._reply_in_thread(mapping, answer)

    def _reply_in_thread(self, mapping: ThreadMapping, message: str) -> None:
        self.registry.bridge.outbox.post(
            mapping.dm_channel_id, message, root_id=mapping.thread_root_post_id
        )

    async def _react(self, mapping: ThreadMapping, action: str, post_id: str) -> str:
        registry = self.registry
        client = registry.bridge.server_of(mapping)
        session_id = mapping.session_id
        try:
            if action == "abort":
                await client.abort(session_id, mapping.directory)
                return ":octagonal_sign: Stopping the current run."
        except AgentError as exc:
            return f":warning: **Not done**\n{exc}"
        if not mapping.last_prompt:
            return "There is no earlier prompt in this thread to send again."
        prompt = PromptReceived(post_id=post_id, text=mapping.last_prompt, at_ms=now_ms())
        if not await registry.deliver(session_id, prompt):
            return _NOT_FOLLOWED
        return ":repeat: Sending the last prompt again."

    async def _admit(self, post: Post) -> bool:
        """Whether the flood limit lets an owner's post through (the first one it stops is told).

        The post's own creation time is the clock: posts caught up after a gap are judged by
        when they were written.
        """
        admission = self.flood.admit(post.user_id, post.create_at / 1000)
        if admission.allowed:
            return True
        logger.warning("post %s of %s not handled: flood limit", post.id, post.user_id)
        if admission.notify:
            until_ms = post.create_at + int(admission.retry_after * 1000)
            notice = flood_notice(
                burst=self.flood.burst,
                refill_interval=self.flood.refill_interval,
                until_ms=until_ms,
            )
            await self._answer(post, notice)
        return False

    async def _answer(self, post: Post, message: str) -> None:
        # In the main DM the answer is a new post; in a thread it is a reply in that thread.
        self.registry.bridge.outbox.post(post.channel_id, message, root_id=post.root_id)

    def _context(self, user_id: str) -> CommandContext:
        bridge = self.registry.bridge
        counts: dict[ThreadState, int] = {}
        for mapping in bridge.index:
            counts[mapping.status] = counts.get(mapping.status, 0) + 1
        servers = (
            self._servers.snapshot()
            if self._servers is not None
            else tuple(
                ServerStatus(url=url, connected=self.registry.connected.get(url, False))
                for url in bridge.servers
            )
        )
        status = StatusSnapshot(
            mattermost_connected=self.connected,
            mattermost_since_ms=self._since_ms,
            servers=servers,
            threads_by_state=counts,
            queued_prompts=self.registry.queued_prompts(),
            started_ms=bridge.started_ms,
            mapping_path=self._mapping_path,
        )
        return CommandContext(
            now_ms=now_ms(),
            site_url=self.identity.site_url,
            sessions=tuple(bridge.index.for_user(user_id)),
            status=status,
        )
