"""Session discovery: one thread per OpenCode session, created once, re-attached after restarts.

Theory of operation
-------------------
:class:`SessionRegistry` knows which session has which runner
(:func:`~mmthreads.runtime.session_runner.run_session`, under
:func:`~mmthreads.runtime.supervisor.supervise`), and turns what the OpenCode consumers report
into thread events:

* a new top-level, unarchived session (``SessionUpserted(created=True)``) gets a thread: a root
  post in the first owner's DM, a mapping saved to the file, a runner started.  Threads are made
  in background tasks, a few at a time, so the event stream goes on meanwhile; later news of a
  session whose thread is being made waits for it;
* a later title is written into the root post (the file in the background), an archive ends
  the thread, a deletion ends it;
* permission and question requests also go to :class:`~mmthreads.runtime.controls.Controls`,
  which posts their cards; every other event of a followed session goes to that session's
  runner, in stream order;
* a lost stream disconnects the server's threads; a (re)connected one looks each of them up
  (:func:`~mmthreads.adapters.opencode_events.reconcile`) and restores or orphans it, and
  sessions found without a thread that were active within the adoption window get one;
* an answer the bridge did not finish showing (it was killed, or the stream dropped) is
  completed from the session's history, or resumed while the session is still busy
  (:func:`~mmthreads.runtime.recovery.recover_answer`).

Creation is race-free per session id: the first trigger makes the thread while later ones wait
for it and then find the mapping; the root itself is posted, or found after a crash, by
:class:`~mmthreads.runtime.thread_roots.RootPoster`.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Final

import msgspec
import trio

from mmthreads.adapters.opencode_events import reconcile
from mmthreads.core import agent_events as ae
from mmthreads.core.events import AgentLost, AgentRestored, SessionEnded, SessionGone
from mmthreads.core.render import root_post, root_post_props
from mmthreads.core.states import ThreadState
from mmthreads.errors import AgentError, MmthreadsError, StreamerGaveUp
from mmthreads.runtime.bridge import now_ms
from mmthreads.runtime.card_store import cards_path
from mmthreads.runtime.controls import Controls
from mmthreads.runtime.effects import ServiceEffects
from mmthreads.runtime.outbox import PostRef
from mmthreads.runtime.recovery import recover_answer, resume_unshown
from mmthreads.runtime.session_runner import run_session
from mmthreads.runtime.supervisor import supervise
from mmthreads.runtime.thread_roots import RootPoster, generated_title

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mmthreads.adapters.opencode import OpenCodeClient
    from mmthreads.core.backoff import RetryPolicy
    from mmthreads.core.events import ThreadEvent
    from mmthreads.mapping import ThreadMapping
    from mmthreads.runtime.bridge import Bridge
    from mmthreads.runtime.session_runner import SessionHandle
    from mmthreads.settings import ControlSettings

__all__ = ["SessionRegistry"]

logger = logging.getLogger(__name__)

#: Threads read at once when answers are recovered after a (re)connect.
RECOVERY_CONCURRENCY: Final = 8
#: Thread roots posted at once when many sessions start together.
CREATION_CONCURRENCY: Final = 8
_LIVE: Final = frozenset({ThreadState.ACTIVE, ThreadState.DISCONNECTED})


class SessionRegistry:
    """The runners of the followed sessions, and the creation of their threads.

    Each thread's runner (:func:`~mmthreads.runtime.session_runner.run_session`) runs under
    :func:`~mmthreads.runtime.supervisor.supervise`: a failed runner is started again from the
    persisted status, with backoff, and one thread's failure never disturbs another.

    Args:
        bridge: The shared service state.
        nursery: Where runner tasks live.
        owner_user_id: The owner whose DM gets new threads.
        dm_channel_id: That DM.
        restart_policy: Backoff and bound for restarting a failed runner.
        adoption_window: Seconds: a session without a thread found when a server (re)connects
            gets one if it was active this recently.
        controls: Timeouts of the permission and question cards.
    """

    def __init__(
        self,
        bridge: Bridge,
        nursery: trio.Nursery,
        *,
        owner_user_id: str,
        dm_channel_id: str,
        restart_policy: RetryPolicy,
        adoption_window: float = 0.0,
        controls: ControlSettings | None = None,
    ) -> None:
        self.bridge: Final = bridge
        self.effects: Final = ServiceEffects(bridge, on_final=self._close_later)
        self._nursery = nursery
        self._owner = owner_user_id
        self._dm = dm_channel_id
        self._policy = restart_policy
        self._adoption_window = adoption_window
        self.handles: dict[str, SessionHandle] = {}
        # Set once a starting runner's handle is published; senders wait for it.
        self._ready: dict[str, trio.Event] = {}
        self._creating: dict[str, trio.Event] = {}
        self._roots = RootPoster(bridge, owner_user_id=owner_user_id, dm_channel_id=dm_channel_id)
        self._creation_limiter = trio.CapacityLimiter(CREATION_CONCURRENCY)
        self.connected: dict[str, bool] = {}
        #: The permissions and questions waiting for the owner, and their cards.
        self.controls: Final = Controls(
            bridge, nursery, settings=controls, path=cards_path(bridge.store.path)
        )
        self._all_stopped = trio.Event()
        self._all_stopped.set()

    def __repr__(self) -> str:
        return f"<SessionRegistry runners={len(self.handles)}>"

    # --- runners ---------------------------------------------------------------------------

    def start_runner(self, mapping: ThreadMapping) -> None:
        """Start the task of a mapped, live thread (at start-up or once its root exists)."""
        session_id = mapping.session_id
        self._ready[session_id] = trio.Event()
        if self._all_stopped.is_set():
            self._all_stopped = trio.Event()
        self._nursery.start_soon(self._supervised, session_id, name=f"thread {mapping.short_id}")

    async def _supervised(self, session_id: str) -> None:
        try:
            await supervise(
                self._attempt, session_id, policy=self._policy, name=f"thread {session_id}"
            )
        except StreamerGaveUp:
            logger.error("the thread of %s is no longer followed", session_id)
        finally:
            self.handles.pop(session_id, None)
            ready = self._ready.pop(session_id, None)
            if ready is not None:
                ready.set()
            self.effects.forget(session_id)
            if not self._ready:
                self._all_stopped.set()

    async def _attempt(self, session_id: str) -> None:
        mapping = self.bridge.index.get(session_id)
        if mapping is None or mapping.status not in _LIVE:
            return
        bridge = self.bridge
        async with trio.open_nursery() as nursery:
            handle: SessionHandle = await nursery.start(
                partial(
                    run_session,
                    session_id,
                    self.effects,
                    state=mapping.status,
                    queue_limit=bridge.queue_limit,
                    inbox_size=bridge.inbox_size,
                    edit_interval=bridge.edit_interval,
                    post_limit=bridge.max_post_size,
                )
            )
            self.handles[session_id] = handle
            if (ready := self._ready.get(session_id)) is not None:
                ready.set()

    def _close_later(self, session_id: str) -> None:
        # Called from inside the runner's own effect: closing waits for room in its inbox, so
        # it must not happen in the runner's task.
        handle = self.handles.get(session_id)
        if handle is not None:
            self._nursery.start_soon(handle.aclose)

    async def aclose(self) -> None:
        """Close every runner: each finishes its inbox and shows its turns' last state.

        Returns once every runner has returned; bound it with a timeout (the service does).
        """
        for handle in list(self.handles.values()):
            await handle.aclose()
        await self._all_stopped.wait()

    def reattach(self) -> int:
        """Start a runner for every live thread of the mapping file; return how many."""
        count = 0
        for mapping in list(self.bridge.index):
            if mapping.status in _LIVE and mapping.session_id not in self._ready:
                self.start_runner(mapping)
                count += 1
        return count

    def queued_prompts(self) -> int:
        """Prompts waiting in disconnected threads for their server to come back."""
        return sum(handle.queued for handle in self.handles.values())

    async def deliver(self, session_id: str, event: ThreadEvent | ae.AgentEvent) -> bool:
        """Send an event to a session's runner; False when the session has none.

        Waits while the session's thread is being made, then while its runner starts.
        """
        if (creating := self._creating.get(session_id)) is not None:
            await creating.wait()
        ready = self._ready.get(session_id)
        if ready is not None:
            await ready.wait()
        handle = self.handles.get(session_id)
        if handle is None:
            return False
        try:
            await handle.send(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    # --- what the OpenCode consumers report -----------------------------------------------

    async def on_agent_event(self, client: OpenCodeClient, event: ae.AgentEvent) -> None:
        """Act on one event of a server's stream (see the module docstring)."""
        match event:
            case ae.SessionUpserted(info=info, created=created):
                await self._on_session(client, info, created=created)
            case ae.SessionDeleted(session_id=session_id):
                await self.deliver(session_id, SessionEnded(reason="deleted", at_ms=now_ms()))
            case ae.AgentStreamConnected():
                self.connected[client.server] = True
                await self._restore(client)
                self._nursery.start_soon(self.controls.recheck, client)
            case (
                ae.PermissionAsked(session_id=session_id)
                | ae.PermissionReplied(session_id=session_id)
                | ae.QuestionAsked(session_id=session_id)
                | ae.QuestionResolved(session_id=session_id)
            ):
                self.controls.on_agent_event(client, event)
                await self.deliver(session_id, event)
            case ae.AgentStreamLost(reason=reason):
                self.connected[client.server] = False
                for session_id in self._sessions_of(client):
                    await self.deliver(session_id, AgentLost(reason=reason))
            case _:
                target = getattr(event, "session_id", None)
                if isinstance(target, str):
                    await self.deliver(target, event)

    def _sessions_of(self, client: OpenCodeClient) -> list[str]:
        return [
            session_id
            for session_id, handle in self.handles.items()
            if (mapping := self.bridge.index.get(session_id)) is not None
            and self.bridge.server_of(mapping) is client
            and handle.state in _LIVE
        ]

    async def _on_session(
        self, client: OpenCodeClient, info: ae.SessionInfo, *, created: bool
    ) -> None:
        if (creating := self._creating.get(info.session_id)) is not None:
            await creating.wait()  # news of a session whose thread is being made: after it
        mapping = self.bridge.index.get(info.session_id)
        if mapping is None:
            if created and info.parent_id is None and info.archived_ms is None:
                self._create_soon(client, info)
            return
        if info.archived_ms is not None:
            await self.deliver(
                info.session_id, SessionEnded(reason="archived", at_ms=info.archived_ms)
            )
            return
        title = generated_title(info.title)
        if title is not None and title != mapping.session_title and mapping.status in _LIVE:
            await self._retitle(mapping, title)

    async def _retitle(self, mapping: ThreadMapping, title: str) -> None:
        mapping = msgspec.structs.replace(mapping, session_title=title)
        root = mapping.thread_root_post_id
        self.bridge.outbox.edit(
            root, PostRef(root), message=root_post(mapping), props=root_post_props(mapping)
        )
        # Written in the background: the event stream does not wait for the disk.
        self.bridge.index.put(mapping)
        self._nursery.start_soon(self.bridge.persist)

    async def _restore(self, client: OpenCodeClient) -> None:
        known = self._sessions_of(client)
        # "" is the server's own project: where sessions of a first start are looked for.
        directories = {m.directory for s in known if (m := self.bridge.index.get(s)) is not None}
        try:
            found = await reconcile(client, {"", *directories}, known)
        except AgentError as exc:
            logger.warning("cannot look the sessions of %s up: %s", client.server, exc)
            return
        to_recover: list[tuple[str, bool, SessionHandle]] = []
        for session_id in known:
            handle = self.handles.get(session_id)
            if handle is None:
                continue
            exists = session_id not in found.gone
            if handle.state is ThreadState.DISCONNECTED:
                await self.deliver(session_id, AgentRestored(session_exists=exists))
            elif not exists:
                await self.deliver(session_id, SessionGone())
            if exists:
                to_recover.append((session_id, found.status_of(session_id) != "idle", handle))
        # An answer cut off by a restart (or by the drop) is completed from history, a few
        # sessions at a time: one whose posts may be unfinished, and one whose first output
        # was lost with the stream (nothing of it was shown).
        limiter = trio.CapacityLimiter(RECOVERY_CONCURRENCY)

        async def recover(session_id: str, busy: bool, handle: SessionHandle) -> None:
            async with limiter:
                if self.effects.may_have_unfinished(session_id):
                    await recover_answer(self.effects, session_id, busy=busy, handle=handle)
                for key in handle.unshown_turns():
                    await resume_unshown(self.effects, session_id, key, busy=busy, handle=handle)

        async with trio.open_nursery() as nursery:
            for session_id, busy, handle in to_recover:
                nursery.start_soon(recover, session_id, busy, handle)
        await self._adopt(client, found.sessions.values())

    async def _adopt(self, client: OpenCodeClient, sessions: Iterable[ae.SessionInfo]) -> None:
        # Sessions created while the bridge was down (or before its first start) get a thread
        # if they were active within the adoption window; older ones are left alone.
        horizon = now_ms() - int(self._adoption_window * 1000)
        for info in sorted(sessions, key=lambda i: i.created_ms):
            if (
                info.session_id in self.bridge.index
                or info.parent_id is not None
                or info.archived_ms is not None
                or max(info.updated_ms, info.created_ms) < horizon
            ):
                continue
            try:
                await self.ensure_thread(client, info)
            except MmthreadsError as exc:
                logger.warning("cannot adopt %s: %s", info.session_id, exc)

    # --- creating a thread ------------------------------------------------------------------

    async def ensure_thread(self, client: OpenCodeClient, info: ae.SessionInfo) -> None:
        """Give a session its thread, once, however many triggers race for it.

        Raises:
            ChatError: The root post could not be created (the next trigger tries again).
        """
        session_id = info.session_id
        while (pending := self._creating.get(session_id)) is not None:
            await pending.wait()
        if session_id in self.bridge.index:
            return
        done = self._creating[session_id] = trio.Event()
        await self._make_thread(client, info, done)

    def _create_soon(self, client: OpenCodeClient, info: ae.SessionInfo) -> None:
        """Start making a new session's thread in the background (the event stream goes on).

        Until it is made, later news of the session waits for it (``_creating``).
        """
        if info.session_id in self._creating or info.session_id in self.bridge.index:
            return
        done = self._creating[info.session_id] = trio.Event()

        async def make() -> None:
            try:
                async with self._creation_limiter:
                    await self._make_thread(client, info, done)
            except MmthreadsError as exc:
                logger.warning("cannot create the thread of %s: %s", info.session_id, exc)

        self._nursery.start_soon(make, name=f"new thread {info.session_id}")

    async def _make_thread(
        self, client: OpenCodeClient, info: ae.SessionInfo, done: trio.Event
    ) -> None:
        session_id = info.session_id
        try:
            mapping = await self._roots.post(client, info)
            # Indexed and given its runner before the (slow) file write, so a prompt posted
            # as soon as the root appears already finds both.
            self.bridge.index.put(mapping)
            self.effects.note_new_thread(session_id)
            self.start_runner(mapping)
            await self.bridge.persist()
            logger.info("thread %s created for %s", mapping.thread_root_post_id, session_id)
        finally:
            del self._creating[session_id]
            done.set()
