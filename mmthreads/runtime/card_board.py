"""The board of waiting requests: their cards, the posts that show them, and the cards file.

:class:`CardBoard` keeps one :class:`Card` per request OpenCode waits on the owner for, shows it
in its thread (posting it once, then editing it, one write at a time per card) and keeps the
waiting ones in the cards file (``mmthreads.runtime.card_store``) so a restarted bridge finds
them again. What moves a card along (OpenCode's events, the owner's reactions and replies,
timeouts, rechecks) is :class:`~mmthreads.runtime.controls.Controls`, built on this board.

Mattermost writes happen in :meth:`CardBoard._show` (the card) and :meth:`CardBoard._say`
(replies in the thread) only, through the bridge's outbox (urgent, in the thread's lane).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import trio

from mmthreads.core import agent_events as ae
from mmthreads.core import cards
from mmthreads.core.states import ThreadState
from mmthreads.errors import ChatError, MmthreadsError
from mmthreads.runtime.bridge import now_ms
from mmthreads.runtime.card_store import CardRecord, encode_cards, load_cards, save_cards
from mmthreads.runtime.outbox import PostRef, Priority
from mmthreads.settings import ControlSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from mmthreads.adapters.opencode import OpenCodeClient
    from mmthreads.runtime.bridge import Bridge

__all__ = ["LIVE", "Card", "CardBoard", "Request"]

logger = logging.getLogger(__name__)

#: The thread states in which a card can still be answered.
LIVE: Final = frozenset({ThreadState.ACTIVE, ThreadState.DISCONNECTED})
# Settled request ids remembered, so a stale listing or a repeated event cannot revive a card.
_RECENT_LIMIT: Final = 1024

#: What a card is about.
Request = ae.PermissionAsked | ae.QuestionAsked


@dataclass(eq=False)
class Card:
    """One request waiting for an answer, and its card."""

    request: Request
    asked_ms: int
    #: When an unanswered permission is rejected (Trio time).
    deadline: float
    #: The session whose thread shows the card ("" until known).
    thread: str = ""
    post_id: str | None = None
    status: str = ""
    shown: str | None = None
    done: bool = False
    #: Who pressed ❌, while the reject waits for its reason.
    rejecting: str | None = None
    #: Our answer is on its way to OpenCode (its echo on the stream is not "elsewhere").
    sending: bool = False
    timer: trio.CancelScope | None = None
    window: trio.CancelScope | None = None
    lock: trio.Lock = field(default_factory=trio.Lock)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    def render(self) -> str:
        if isinstance(self.request, ae.PermissionAsked):
            return cards.permission_card(self.request, self.status)
        return cards.question_card(self.request, self.status)


class CardBoard:
    """The waiting requests and their cards (see the module docstring).

    Args:
        bridge: The shared service state.
        nursery: Where card and timer tasks run.
        settings: Timeouts of the cards.
        path: The file pending cards are kept in; None keeps them in memory only.
    """

    def __init__(
        self,
        bridge: Bridge,
        nursery: trio.Nursery,
        *,
        settings: ControlSettings | None = None,
        path: Path | None = None,
    ) -> None:
        self.bridge: Final = bridge
        self._nursery = nursery
        self._settings = settings if settings is not None else ControlSettings()
        self._path = path
        self._cards: dict[str, Card] = {}
        self._by_post: dict[str, Card] = {}
        self._recent: deque[str] = deque(maxlen=_RECENT_LIMIT)
        self._parents: dict[str, str | None] = {}
        self._names: dict[str, str] = {}
        self._loaded = False
        self._load_lock = trio.Lock()
        self._save_lock = trio.Lock()
        self._saved = b""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pending={len(self._cards)}>"

    def pending(self, session_id: str) -> list[Request]:
        """The requests waiting in a session's thread, oldest first."""
        return [c.request for c in self._cards.values() if c.thread == session_id and not c.done]

    # --- restarts ----------------------------------------------------------------------------

    async def ensure_loaded(self) -> None:
        """Read the cards file once (the first thing every entry point does)."""
        if self._loaded:
            return
        async with self._load_lock:
            if self._loaded:
                return
            path = self._path
            records = [] if path is None else await trio.to_thread.run_sync(load_cards, path)
            for record in records:
                self._adopt(record)
            self._loaded = True

    def _adopt(self, record: CardRecord) -> None:
        request = record.request
        mapping = self.bridge.index.get(record.thread)
        if request.request_id in self._cards or mapping is None:
            return
        # The timeout counts from when the request was first seen, not from the restart.
        waited = max(now_ms() - record.asked_ms, 0) / 1000
        card = Card(
            request=request,
            asked_ms=record.asked_ms,
            deadline=trio.current_time() + self._settings.permission_timeout - waited,
            thread=record.thread,
            post_id=record.post_id,
            status=self._waiting(request),
        )
        self._cards[card.request_id] = card
        self._by_post[record.post_id] = card
        if mapping.status not in LIVE:
            self._nursery.start_soon(self._guard, self._settle, card, cards.EXPIRED)

    # --- cards -------------------------------------------------------------------------------

    async def _settle(self, card: Card, status: str) -> None:
        if card.done:
            return
        card.done = True
        card.status = status
        card.rejecting = None
        for scope in (card.timer, card.window):
            if scope is not None:
                scope.cancel()
        self._forget(card)
        await self._show(card)
        await self.save()

    def _forget(self, card: Card) -> None:
        self._cards.pop(card.request_id, None)
        if card.post_id is not None:
            self._by_post.pop(card.post_id, None)
        self._recent.append(card.request_id)

    async def _show(self, card: Card) -> None:
        """Post the card, or edit it to its current text (one write at a time per card)."""
        mapping = self.bridge.index.get(card.thread) if card.thread else None
        if mapping is None:
            return  # not opened yet: opening shows the current text
        async with card.lock:
            text = card.render()
            if card.post_id is None:
                prop = (
                    cards.PERMISSION_PROP
                    if isinstance(card.request, ae.PermissionAsked)
                    else cards.QUESTION_PROP
                )
                posted = self.bridge.outbox.post(
                    mapping.dm_channel_id,
                    text,
                    root_id=mapping.thread_root_post_id,
                    props={prop: card.request_id},
                )
                post_id = await posted.wait()  # reactions on the card must find it
                if post_id is None:
                    return  # refused (logged by the outbox); the next change tries again
                card.post_id = post_id
                if not card.done:
                    self._by_post[post_id] = card
            elif text != card.shown:
                self.bridge.outbox.edit(
                    mapping.thread_root_post_id,
                    PostRef(card.post_id),
                    message=text,
                    priority=Priority.URGENT,
                )
            card.shown = text

    async def _say(self, session_id: str, message: str) -> None:
        mapping = self.bridge.index.get(session_id)
        if mapping is None:
            return
        self.bridge.outbox.post(mapping.dm_channel_id, message, root_id=mapping.thread_root_post_id)

    async def save(self) -> None:
        """Write the waiting cards to the file; returns once what is current now is written."""
        if self._path is None:
            return
        async with self._save_lock:
            records = [
                CardRecord(
                    post_id=c.post_id, thread=c.thread, asked_ms=c.asked_ms, request=c.request
                )
                for c in self._cards.values()
                if c.post_id is not None and not c.done
            ]
            data = encode_cards(records)
            if data == self._saved:
                return
            try:
                await trio.to_thread.run_sync(save_cards, self._path, data)
            except OSError as exc:
                logger.warning("cannot write the cards file %s: %s", self._path, exc)
                return
            self._saved = data

    # --- helpers -----------------------------------------------------------------------------

    def _waiting(self, request: Request) -> str:
        if isinstance(request, ae.PermissionAsked):
            return cards.permission_waiting(timeout=self._settings.permission_timeout)
        return cards.question_waiting(request)

    def _client(self, card: Card) -> OpenCodeClient:
        client = self.bridge.servers.get(card.request.server)
        if client is not None:
            return client
        mapping = self.bridge.index.get(card.thread)
        if mapping is None:  # pragma: no cover - a card's thread stays mapped
            return next(iter(self.bridge.servers.values()))
        return self.bridge.server_of(mapping)

    def _dir(self, card: Card) -> str:
        if card.request.directory:
            return card.request.directory
        mapping = self.bridge.index.get(card.thread)
        return mapping.directory if mapping is not None else ""

    async def _name(self, user_id: str) -> str:
        """The username shown as who answered ("" if it cannot be found)."""
        name = self._names.get(user_id)
        if name is None:
            try:
                name = (await self.bridge.chat.get_user(user_id)).username
            except ChatError as exc:
                logger.warning("cannot look user %s up: %s", user_id, exc)
                return ""
            self._names[user_id] = name
        return name

    async def _guard(self, fn: Callable[..., Awaitable[None]], *args: object) -> None:
        # Card tasks run in the service's nursery: a failure is logged, never spread.
        try:
            await fn(*args)
        except MmthreadsError as exc:
            logger.warning("card task %s failed: %s", getattr(fn, "__name__", fn), exc)
