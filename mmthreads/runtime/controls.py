"""Permission and question cards at run time: posted, answered in the thread, kept over restarts.

Theory of operation
-------------------
:class:`Controls` owns every request OpenCode is waiting on a human for. Each has one *card*
(``mmthreads.core.cards``) in the thread of its session (a subagent's request goes to its
parent's thread), and the card is edited, never reposted, as the request moves on:

* ``permission.asked`` / ``question.asked`` register the request at once and post its card from
  a task of their own, so the OpenCode event stream never waits for Mattermost;
* the owner's ✅ / ♾️ reaction answers a permission; ❌ rejects it, but first waits up to
  ``reject_reason_timeout`` for the owner's next reply in the thread, which is sent as the
  reject's message (OpenCode then lets the model go on with it); without a reply the reject goes
  out bare, and the run stops;
* while a question waits, the owner's next reply in its thread is the answer
  (:func:`~mmthreads.core.cards.parse_answers`); a reply that is not one gets a short help, never
  a prompt; ❌ on the card dismisses the question;
* an answer given elsewhere (the TUI) edits the card too; a permission nobody answers is rejected
  after ``permission_timeout``, and the model is told why.

Cards survive restarts. While a card waits, its request, post and thread are in a small file
next to the mapping file (``mmthreads.runtime.card_store``). Whenever a server's event stream
(re)connects, :meth:`Controls.recheck` asks it what is still pending (``GET /permission``,
``GET /question``): a card whose request is gone is marked expired, never taken as approved; a
pending request without a card gets one.

The cards themselves, their posts and the file are :class:`~mmthreads.runtime.card_board.CardBoard`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from mmthreads.core import agent_events as ae
from mmthreads.core import cards
from mmthreads.errors import AgentError, AgentNotFound, MmthreadsError
from mmthreads.runtime.bridge import now_ms
from mmthreads.runtime.card_board import LIVE, Card, CardBoard, Request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mmthreads.adapters.opencode import OpenCodeClient
    from mmthreads.mapping import ThreadMapping
    from mmthreads.wire.mattermost import Post

__all__ = ["NO_PERMISSION_PENDING", "Controls"]

logger = logging.getLogger(__name__)

#: The reply to ✅/♾️/❌ in a thread where nothing waits for an answer.
NO_PERMISSION_PENDING: Final = "No permission is waiting for an answer in this thread."
_QUESTION_HINT: Final = "Reply in this thread to answer the question; :x: on its card dismisses it."
# How many parent sessions are followed up from a subagent's session to find a thread.
_PARENT_DEPTH: Final = 4


class Controls(CardBoard):
    """The requests OpenCode waits on the owner for, and their cards (see the module docstring).

    Args:
        bridge: The shared service state.
        nursery: Where card and timer tasks run.
        settings: Timeouts of the cards.
        path: The file pending cards are kept in; None keeps them in memory only.
    """

    # --- what OpenCode reports ---------------------------------------------------------------

    def on_agent_event(self, client: OpenCodeClient, event: ae.AgentEvent) -> None:
        """Take a request, or news of one, from a server's stream (never waits)."""
        match event:
            case ae.PermissionAsked() | ae.QuestionAsked():
                self._asked(client, event)
            case ae.PermissionReplied(request_id=request_id, reply=reply):
                self._resolved(request_id, cards.permission_settled_elsewhere(reply))
            case ae.QuestionResolved(request_id=request_id, rejected=True):
                self._resolved(request_id, cards.question_dismissed())
            case ae.QuestionResolved(request_id=request_id, answers=answers):
                self._resolved(request_id, cards.question_answered(answers))
            case _:
                pass

    def _asked(self, client: OpenCodeClient, request: Request) -> None:
        request_id = request.request_id
        if request_id in self._cards or request_id in self._recent:
            return
        card = Card(
            request=request,
            asked_ms=now_ms(),
            deadline=trio.current_time() + self._settings.permission_timeout,
            status=self._waiting(request),
        )
        self._cards[request_id] = card
        self._nursery.start_soon(self._guard, self._open, client, card)

    def _resolved(self, request_id: str, status: str) -> None:
        card = self._cards.get(request_id)
        # Our own answer's echo: the answer's call settles the card itself.
        if card is not None and not card.sending:
            self._nursery.start_soon(self._guard, self._settle, card, status)

    async def _open(self, client: OpenCodeClient, card: Card) -> None:
        thread = await self._thread_of(client, card.request)
        if thread is None:
            logger.info("%s waits in a session without a thread", card.request_id)
            self._forget(card)
            return
        card.thread = thread
        await self._show(card)
        if not card.done:
            self._start_timer(card)
            await self.save()

    async def _thread_of(self, client: OpenCodeClient, request: Request) -> str | None:
        """The session whose thread shows ``request``: its own, or its nearest parent's."""
        session_id = request.session_id
        for _ in range(_PARENT_DEPTH):
            mapping = self.bridge.index.get(session_id)
            if mapping is not None:
                return session_id if mapping.status in LIVE else None
            if session_id not in self._parents:
                try:
                    info = await client.get_session(session_id, request.directory)
                except AgentError as exc:
                    logger.warning("cannot look %s up: %s", session_id, exc)
                    return None
                self._parents[session_id] = info.parent_id
            parent = self._parents[session_id]
            if parent is None:
                return None
            session_id = parent
        return None

    # --- what the owner does -----------------------------------------------------------------

    async def react(
        self, mapping: ThreadMapping, action: str, post_id: str, user_id: str
    ) -> str | None:
        """Carry out ✅ (``once``), ♾️ (``always``) or ❌ (``reject``) in a session's thread.

        A reaction on a card answers that card; elsewhere in the thread it answers the newest
        waiting permission (❌ dismisses a question when no permission waits).

        Returns:
            A reply for the thread, or None when the card's edit says it all.
        """
        await self.ensure_loaded()
        session_id = mapping.session_id
        card = self._by_post.get(post_id)
        if card is None or card.done or card.thread != session_id:
            waiting = [c for c in self._cards.values() if c.thread == session_id and not c.done]
            permissions = [c for c in waiting if isinstance(c.request, ae.PermissionAsked)]
            card = permissions[-1] if permissions else None
            if card is None and action == "reject" and waiting:
                card = waiting[0]
        if card is None:
            return NO_PERMISSION_PENDING
        by = await self._name(user_id)
        if isinstance(card.request, ae.QuestionAsked):
            if action != "reject":
                return _QUESTION_HINT
            return await self._send(
                card,
                _call(self._client(card).reject_question, card.request_id, self._dir(card)),
                cards.question_dismissed(by=by),
            )
        if card.sending:
            return None
        window = self._settings.reject_reason_timeout
        if action == "reject" and window > 0:
            if card.rejecting is None:
                card.rejecting = by
                card.status = cards.permission_rejecting(window, by=by)
                self._nursery.start_soon(self._guard, self._reason_window, card, window)
                await self._show(card)
            return None
        # ✅ or ♾️ during the reason window: the owner changed their mind.
        return await self._reply_permission(card, action, by=by)

    async def intercept(self, session_id: str, post: Post) -> bool:
        """Take a reply in a session's thread as a reject's reason or a question's answer.

        Returns:
            True when the reply was taken (it is not a prompt then).
        """
        await self.ensure_loaded()
        waiting = [c for c in self._cards.values() if c.thread == session_id and not c.done]
        rejecting = [c for c in waiting if c.rejecting is not None and not c.sending]
        if rejecting:
            card = rejecting[0]
            error = await self._reply_permission(
                card, "reject", by=card.rejecting or "", reason=post.message
            )
            if error is not None:
                await self._say(session_id, error)
            return True
        questions = [c for c in waiting if isinstance(c.request, ae.QuestionAsked)]
        if not questions:
            return False
        card = questions[0]
        assert isinstance(card.request, ae.QuestionAsked)
        try:
            answers = cards.parse_answers(card.request, post.message)
        except cards.AnswerError as exc:
            await self._say(session_id, cards.answer_help(card.request, str(exc)))
            return True
        by = await self._name(post.user_id)
        client = self._client(card)
        call = _call(client.reply_question, card.request_id, self._dir(card), answers)
        error = await self._send(card, call, cards.question_answered(answers, by=by))
        if error is not None:
            await self._say(session_id, error)
        return True

    async def _reply_permission(
        self, card: Card, reply: str, *, by: str, reason: str = "", status: str = ""
    ) -> str | None:
        request = card.request
        assert isinstance(request, ae.PermissionAsked)
        delivered = True

        async def call() -> None:
            nonlocal delivered
            delivered = await self._client(card).reply_permission(
                request.request_id,
                request.session_id,
                self._dir(card),
                reply,
                reason.strip() or None,
            )

        def outcome() -> str:
            if status:
                return status
            if not delivered:  # an older server: the reason went nowhere, the run stopped
                return cards.permission_decided(reply, by=by) + "\n" + cards.REASON_NOT_TAKEN
            return cards.permission_decided(reply, by=by, reason=reason)

        return await self._send(card, call, outcome)

    async def _send(
        self, card: Card, call: Callable[[], Awaitable[None]], status: str | Callable[[], str]
    ) -> str | None:
        """Send an answer to OpenCode and settle the card with ``status`` (or what it returns
        once the answer went through); an error text if it failed."""
        if card.done or card.sending:
            return None
        card.sending = True
        try:
            await call()
        except AgentNotFound:
            # OpenCode no longer has the request: show that, never the answer we meant.
            await self._settle(card, cards.EXPIRED)
            return None
        except AgentError as exc:
            logger.warning("cannot answer %s: %s", card.request_id, exc)
            return f":warning: **Not done**\n{exc}"
        finally:
            card.sending = False
        await self._settle(card, status() if callable(status) else status)
        return None

    # --- timers ------------------------------------------------------------------------------

    def _start_timer(self, card: Card) -> None:
        timeout = self._settings.permission_timeout
        if timeout <= 0 or card.timer is not None or card.done:
            return
        if not isinstance(card.request, ae.PermissionAsked):
            return
        card.timer = trio.CancelScope(deadline=card.deadline)
        self._nursery.start_soon(self._guard, self._time_out, card, card.timer)

    async def _time_out(self, card: Card, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep_forever()
        if card.done:
            return
        timeout = self._settings.permission_timeout
        reason = cards.timeout_reject_message(timeout)
        status = cards.permission_timed_out(timeout)
        error = await self._reply_permission(card, "reject", by="", reason=reason, status=status)
        if error is not None:
            card.timer = None  # tried again when the server is back (recheck)

    async def _reason_window(self, card: Card, window: float) -> None:
        with trio.CancelScope() as scope:
            card.window = scope
            await trio.sleep(window)
        card.window = None
        if card.done or card.rejecting is None:
            return
        error = await self._reply_permission(card, "reject", by=card.rejecting)
        if error is not None:
            card.rejecting = None
            card.status = self._waiting(card.request)
            await self._show(card)
            await self._say(card.thread, error)

    async def recheck(self, client: OpenCodeClient) -> None:
        """Match the cards of a (re)connected server's threads with what it still waits on."""
        try:
            await self._recheck(client)
        except MmthreadsError as exc:
            logger.warning("cannot recheck the cards of %s: %s", client.server, exc)

    async def _recheck(self, client: OpenCodeClient) -> None:
        await self.ensure_loaded()
        bridge = self.bridge
        live = {
            m.session_id: m
            for m in bridge.index
            if m.status in LIVE and bridge.server_of(m) is client
        }
        # Only cards that existed before the listing: a request asked meanwhile is not in it.
        before = [c for c in self._cards.values() if c.thread in live and c.post_id is not None]
        listed: list[Request] = []
        checked: set[tuple[bool, str]] = set()
        for directory in sorted({m.directory for m in live.values()}):
            for is_permission in (True, False):
                try:
                    if is_permission:
                        listed.extend(await client.list_permissions(directory))
                    else:
                        listed.extend(await client.list_questions(directory))
                except AgentError as exc:  # e.g. a server from before these routes
                    logger.info("cannot list what %s waits on: %s", directory, exc)
                    continue
                checked.add((is_permission, directory))
        still = {request.request_id for request in listed}
        for card in before:
            kind = (isinstance(card.request, ae.PermissionAsked), live[card.thread].directory)
            if card.done or kind not in checked:
                continue
            if card.request_id not in still:
                await self._settle(card, cards.EXPIRED)
                continue
            if card.rejecting is None and not card.sending:
                card.status = self._waiting(card.request)
                await self._show(card)
            self._start_timer(card)
        for request in listed:
            self._asked(client, request)


def _call(fn: Callable[..., Awaitable[object]], *args: object) -> Callable[[], Awaitable[None]]:
    """``fn(*args)`` as a call that takes nothing and returns nothing."""

    async def call() -> None:
        await fn(*args)

    return call
