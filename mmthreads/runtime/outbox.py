"""One outbound queue for every Mattermost write: ordered per thread, urgent first, never lost.

Theory of operation
-------------------
Everything the running bridge writes to Mattermost (posts, edits, reactions) goes through one
:class:`Outbox`.  Callers enqueue and go on: a session runner never waits for Mattermost, so the
OpenCode event stream that feeds the runners never waits for it either.

Lanes.  Each write belongs to a lane: a thread (named by its root post id) or a channel's top
level (named by the channel id).  A lane's writes are carried out one at a time, in the order
they were enqueued, so a thread reads in the order its runner decided.  Different lanes go on
in parallel, ``workers`` requests at a time.

Priority.  A write is :attr:`Priority.URGENT` (command replies, notices, cards, an answer's first
post and final render) or :attr:`Priority.PROGRESS` (an intermediate render of an answer).
Lanes holding an urgent write are served before lanes holding only progress; lanes of the same
priority take turns.

Coalescing.  An edit of a post that already has an edit waiting (not yet started) replaces that
edit's text and props: under pressure a post is edited less often, and its last text always
wins.

Never lost.  A write that fails because Mattermost is unreachable, failing (5xx) or rate
limiting is tried again, with capped backoff, until it succeeds; its lane waits meanwhile, so
order holds across an outage of any length.  A 429 pauses every worker for the time the server
named.  A write the server refuses (4xx) is logged and dropped, and so are the edits and
reactions of a post that could not be created.  Creating a post is not idempotent, so every
post carries a random marker in its props (:data:`MARKER_PROP`); when a failed create may have
reached the server, the channel's recent posts are searched for the marker before posting again.

Delayed posts.  :meth:`Outbox.post_later` enqueues a post after a delay unless it is called off
first (a notice that may turn out to be moot); the lane's other writes do not wait for it.

Pacing.  The REST client keeps the server's latest ``X-Ratelimit-*`` headers; when the bucket is
nearly empty, workers wait for one request's worth of refill instead of running into 429s.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias

import trio

from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import ChatError, ChatRateLimited, ChatUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mmthreads.adapters.mattermost_rest import MattermostClient

__all__ = ["DEFAULT_OUTAGE_POLICY", "MARKER_PROP", "Delayed", "Outbox", "PostRef", "Priority"]

logger = logging.getLogger(__name__)

#: The post prop holding a create's random marker (finds a post whose create answer was lost).
MARKER_PROP: Final = "mmthreads_out"
#: Backoff between tries of a write while Mattermost is unreachable (never gives up).
DEFAULT_OUTAGE_POLICY: Final = RetryPolicy(initial_delay=0.5, factor=2.0, max_delay=15.0)
#: How far back (ms) the channel is searched for a post whose create may have gone through.
_SEARCH_MARGIN_MS: Final = 120_000


class Priority(enum.IntEnum):
    """How soon a write should happen; lower goes first."""

    URGENT = 0
    PROGRESS = 1


class PostRef:
    """A post the outbox creates (or one that exists already): its id once known.

    Attributes:
        id: The post id; None until created (and for good when the create was refused).
        failed: The create was refused; edits and reactions of the post are dropped.
    """

    __slots__ = ("_settled", "failed", "id")

    def __init__(self, post_id: str | None = None) -> None:
        self.id = post_id
        self.failed = False
        self._settled = trio.Event()
        if post_id is not None:
            self._settled.set()

    def __repr__(self) -> str:
        state = "failed" if self.failed else (self.id or "pending")
        return f"<PostRef {state}>"

    def _settle(self, post_id: str | None) -> None:
        self.id = post_id
        self.failed = post_id is None
        self._settled.set()

    async def wait(self) -> str | None:
        """The post id once the create is done; None if it was refused."""
        await self._settled.wait()
        return self.id


class Delayed:
    """A post queued to be enqueued later (:meth:`Outbox.post_later`); it can be called off."""

    __slots__ = ("_scope", "enqueued")

    def __init__(self) -> None:
        self.enqueued = False
        self._scope = trio.CancelScope()

    def cancel(self) -> bool:
        """Call the post off; False if it was enqueued already (then it will be posted)."""
        if self.enqueued:
            return False
        self._scope.cancel()
        return True


@dataclass(slots=True, eq=False)
class _Create:
    ref: PostRef
    channel_id: str
    message: str
    root_id: str
    props: dict[str, object]
    file_ids: tuple[str, ...]
    priority: Priority
    enqueued_ms: int
    upload: tuple[str, bytes] | None = None  # (file name, data) to attach, uploaded first
    maybe_sent: bool = False


@dataclass(slots=True, eq=False)
class _Edit:
    ref: PostRef
    message: str | None
    props: Mapping[str, object] | None
    priority: Priority


@dataclass(slots=True, eq=False)
class _React:
    ref: PostRef
    user_id: str
    emoji: str
    priority: Priority


_Op: TypeAlias = _Create | _Edit | _React


@dataclass(slots=True, eq=False)
class _Lane:
    key: str
    ops: deque[_Op] = field(default_factory=deque)
    #: The waiting (not started) edit of each post, by ``id(ref)``, for coalescing.
    edits: dict[int, _Edit] = field(default_factory=dict)
    urgent: int = 0  # urgent writes waiting
    busy: bool = False
    queued: set[Priority] = field(default_factory=set)  # the ready queues it is in


class Outbox:
    """Mattermost writes, queued per lane and carried out by a few workers (module docstring).

    Run :meth:`run` in a nursery (``await nursery.start(outbox.run)``) for the writes to happen.

    Args:
        chat: The REST client.
        workers: Requests in flight at once.
        outage_policy: Backoff between tries of a failing write (its bound is ignored).
        clock_ms: The wall clock in epoch ms (to search for a post that may exist).
    """

    def __init__(
        self,
        chat: MattermostClient,
        *,
        workers: int = 4,
        outage_policy: RetryPolicy = DEFAULT_OUTAGE_POLICY,
        clock_ms: Callable[[], int],
    ) -> None:
        self._chat = chat
        self._workers = workers
        self._policy = outage_policy
        self._clock_ms = clock_ms
        self._lanes: dict[str, _Lane] = {}
        self._ready: dict[Priority, deque[_Lane]] = {p: deque() for p in Priority}
        self._lot = trio.lowlevel.ParkingLot()
        self._paused_until = 0.0
        self._pending = 0
        self._idle = trio.Event()
        self._idle.set()
        self._nursery: trio.Nursery | None = None
        self.failed_writes = 0

    def __repr__(self) -> str:
        return f"<Outbox pending={self._pending} lanes={len(self._lanes)}>"

    @property
    def pending(self) -> int:
        """Writes waiting or in flight."""
        return self._pending

    # --- enqueueing --------------------------------------------------------------------------

    def post(
        self,
        channel_id: str,
        message: str,
        *,
        root_id: str = "",
        props: Mapping[str, object] | None = None,
        file_ids: tuple[str, ...] = (),
        upload: tuple[str, bytes] | None = None,
        priority: Priority = Priority.URGENT,
    ) -> PostRef:
        """Queue a new post (a reply in ``root_id``'s thread, or a top-level post).

        Args:
            upload: ``(file name, data)`` of a file to upload and attach to the post.
        """
        ref = PostRef()
        marked = {**(props or {}), MARKER_PROP: secrets.token_hex(8)}
        op = _Create(
            ref, channel_id, message, root_id, marked, file_ids, priority, self._clock_ms(), upload
        )
        self._append(root_id or channel_id, op)
        return ref

    def post_later(
        self, delay: float, channel_id: str, message: str, *, root_id: str = ""
    ) -> Delayed:
        """Queue an urgent post ``delay`` seconds from now, unless :meth:`Delayed.cancel` is
        called first.  Other writes of its lane are not held up meanwhile.

        Raises:
            RuntimeError: The outbox is not running.
        """
        if self._nursery is None:
            raise RuntimeError("the outbox is not running")
        delayed = Delayed()

        async def enqueue_when_due() -> None:
            with delayed._scope:
                await trio.sleep(delay)
                delayed.enqueued = True
                self.post(channel_id, message, root_id=root_id)

        self._nursery.start_soon(enqueue_when_due)
        return delayed

    def edit(
        self,
        lane: str,
        ref: PostRef,
        *,
        message: str | None = None,
        props: Mapping[str, object] | None = None,
        priority: Priority = Priority.PROGRESS,
    ) -> None:
        """Queue an edit of ``ref``; it replaces an edit of the same post still waiting.

        Args:
            lane: The post's lane: its thread's root id (or its own id for a root post).
        """
        waiting = self._lanes[lane].edits.get(id(ref)) if lane in self._lanes else None
        if waiting is not None:
            if message is not None:
                waiting.message = message
            if props is not None:
                waiting.props = props
            if priority < waiting.priority:
                waiting.priority = priority
                self._lanes[lane].urgent += 1
                self._schedule(self._lanes[lane])
            return
        op = _Edit(ref, message, props, priority)
        self._append(lane, op).edits[id(ref)] = op

    def react(
        self,
        lane: str,
        ref: PostRef,
        user_id: str,
        emoji: str,
        *,
        priority: Priority = Priority.URGENT,
    ) -> None:
        """Queue a reaction by ``user_id`` on ``ref``."""
        self._append(lane, _React(ref, user_id, emoji, priority))

    def _append(self, key: str, op: _Op) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
        lane.ops.append(op)
        if op.priority is Priority.URGENT:
            lane.urgent += 1
        self._pending += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._schedule(lane)
        return lane

    def _schedule(self, lane: _Lane) -> None:
        if lane.busy or not lane.ops:
            return
        priority = Priority.URGENT if lane.urgent else Priority.PROGRESS
        if priority not in lane.queued:
            lane.queued.add(priority)
            self._ready[priority].append(lane)
            self._lot.unpark()

    def _next_lane(self) -> _Lane | None:
        for priority in Priority:
            ready = self._ready[priority]
            while ready:
                lane = ready.popleft()
                lane.queued.discard(priority)
                if not lane.busy and lane.ops:
                    return lane
        return None

    # --- carrying out ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Carry out the writes until cancelled."""
        async with trio.open_nursery() as nursery:
            for number in range(self._workers):
                nursery.start_soon(self._work, name=f"outbox worker {number}")
            self._nursery = nursery
            task_status.started()

    async def drain(self) -> None:
        """Return once every write enqueued so far (and since) is done or dropped."""
        await self._idle.wait()

    async def _work(self) -> None:
        while True:
            lane = self._next_lane()
            if lane is None:
                await self._lot.park()
                continue
            lane.busy = True
            op = lane.ops[0]
            if isinstance(op, _Edit) and lane.edits.get(id(op.ref)) is op:
                del lane.edits[id(op.ref)]  # started: later edits queue behind it
            try:
                await self._carry_out(op)
            finally:
                lane.ops.popleft()
                if op.priority is Priority.URGENT:
                    lane.urgent -= 1
                lane.busy = False
                self._pending -= 1
                if lane.ops:
                    self._schedule(lane)
                elif not lane.edits:
                    del self._lanes[lane.key]
                if not self._pending:
                    self._idle.set()

    async def _carry_out(self, op: _Op) -> None:
        failures = 0
        while True:
            await self._pace()
            try:
                await self._send(op)
                return
            except ChatRateLimited as exc:
                self._paused_until = max(self._paused_until, trio.current_time() + exc.retry_after)
                logger.warning("Mattermost is rate limiting; writes wait %.3g s", exc.retry_after)
            except ChatUnavailable as exc:
                failures += 1
                if isinstance(op, _Create) and exc.maybe_done:
                    op.maybe_sent = True
                delay = self._policy.delay(failures)
                log = logger.warning if failures == 1 else logger.debug
                log("cannot write to Mattermost (%s); trying again in %.3g s", exc, delay)
                await trio.sleep(delay)
            except ChatError as exc:
                self.failed_writes += 1
                logger.error("Mattermost refused a write, dropped: %s", exc)
                if isinstance(op, _Create):
                    op.ref._settle(None)
                return

    async def _send(self, op: _Op) -> None:
        chat = self._chat
        match op:
            case _Create():
                if op.maybe_sent and (found := await self._find(op)) is not None:
                    op.ref._settle(found)
                    return
                if op.upload is not None and not op.file_ids:
                    name, data = op.upload
                    info = await chat.upload_file(op.channel_id, name, data)
                    op.file_ids = (info.id,)  # a retry attaches it, not a second upload
                post = await chat.create_post(
                    op.channel_id,
                    op.message,
                    root_id=op.root_id,
                    props=op.props,
                    file_ids=op.file_ids,
                )
                op.ref._settle(post.id)
            case _Edit():
                if op.ref.id is not None:
                    await chat.patch_post(op.ref.id, message=op.message, props=op.props)
            case _React():
                if op.ref.id is not None:
                    await chat.add_reaction(op.user_id, op.ref.id, op.emoji)

    async def _find(self, op: _Create) -> str | None:
        """The post of ``op`` if an earlier try created it after all."""
        since = max(op.enqueued_ms - _SEARCH_MARGIN_MS, 0)
        found = await self._chat.get_posts_since(op.channel_id, since)
        marker = op.props[MARKER_PROP]
        for post in found.in_order():
            if post.props.get(MARKER_PROP) == marker:
                logger.info("a post whose create seemed lost exists: %s", post.id)
                return post.id
        return None

    async def _pace(self) -> None:
        while True:
            now = trio.current_time()
            if self._paused_until > now:
                await trio.sleep_until(self._paused_until)
                continue
            status = self._chat.rate_limit
            if status is None or status.remaining > self._workers:
                return
            # One request's worth of refill, counted from the answer that reported it.
            used = max(status.limit - 1 - status.remaining, 1)
            ready_at = status.observed_at + status.reset_after / used
            if ready_at <= now:
                return
            await trio.sleep_until(ready_at)
            return
