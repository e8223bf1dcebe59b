"""``MattermostEmulator``: the state, the WebSocket hub, the fault plan and the controls.

Usable without a server (drive ``state`` through ``perform`` and read what the hub queued), and
the object every running server shares.  Tests and drills synchronize on it with ``wait_*``
methods, which sleep on a ``trio.Event`` that every change sets: no polling.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import trio

from mmthreads.harness.faults import FaultPlan
from mmthreads.harness.mattermost.hub import Hub, Resume, WebConn
from mmthreads.harness.mattermost.ids import wall_clock_ms
from mmthreads.harness.mattermost.posts import CreatePost
from mmthreads.harness.mattermost.ratelimit import RateLimit, RateLimiter
from mmthreads.harness.mattermost.state import MattermostState
from mmthreads.harness.mattermost.version import SERVER_VERSION

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.mattermost.directory import Limits
    from mmthreads.harness.mattermost.events import WsEvent
    from mmthreads.harness.mattermost.models import Account, Channel, Post, Reaction

__all__ = ["ConnectRecord", "MattermostEmulator", "RequestRecord", "SocketControl"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RequestRecord(msgspec.Struct, frozen=True):
    """One REST request the server answered (or a fault answered for it)."""

    method: str
    path: str
    status: int
    user_id: str
    at: float


class ConnectRecord(msgspec.Struct, frozen=True):
    """One authenticated WebSocket attachment."""

    user_id: str
    connection_id: str
    resume: Resume
    at: float


class SocketControl:
    """What the emulator can do to a live socket (implemented by the ASGI layer)."""

    def close(self, code: int = 1006) -> None:
        """Close the socket: ``1006`` drops it without a close frame."""
        raise NotImplementedError


class MattermostEmulator:
    """A Mattermost server's state plus the knobs of a fault drill.

    Args:
        plan: The faults to inject (an empty plan by default).
        rate_limit: Enable rate limiting with these settings (off by default, as on a real
            server).
        clock: Epoch-milliseconds source for timestamps.
        seed: Seed for ids, for reproducible runs.
        limits: Server limits (message runes, file size, payload size ...).
        ping_interval: Seconds between the server's WebSocket ping frames; ``None`` (the
            default) sends none.  The real server pings every 60 s, first after 60 s;
            hypercorn also pings the moment a socket opens, and trio-websocket 0.12 fails
            when a ping arrives while it is closing, so pings are opt-in.
        auth_timeout: Seconds an unauthenticated socket may take to send its challenge.
        inactive_ttl: Seconds a disconnected WebSocket connection can still be resumed.
    """

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        rate_limit: RateLimit | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        seed: int | None = None,
        limits: Limits | None = None,
        ping_interval: float | None = None,
        auth_timeout: float = 5.0,
        inactive_ttl: float = 300.0,
    ) -> None:
        self.state = MattermostState(clock=clock, seed=seed, limits=limits)
        self.hub = Hub(
            self.state.new_id,
            server_version=SERVER_VERSION,
            inactive_ttl_ms=int(inactive_ttl * 1000),
        )
        self.plan = plan if plan is not None else FaultPlan()
        self.rate_limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        self.ping_interval = ping_interval
        self.auth_timeout = auth_timeout
        #: Every REST request answered, in order.
        self.requests: list[RequestRecord] = []
        #: Every event broadcast, in order (before per-connection faults).
        self.events: list[WsEvent] = []
        #: Every authenticated WebSocket attachment, in order.
        self.connects: list[ConnectRecord] = []
        #: Live sockets (the ASGI layer adds and removes them).
        self.sockets: set[SocketControl] = set()
        #: Drops a TCP connection by the client address the app saw (set by the server).
        self.abort_transport: Callable[[tuple[str, int]], bool] | None = None
        self.refuse_websockets_until = -math.inf
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return (
            f"<MattermostEmulator users={len(self.state.users)} posts={len(self.state.posts)}"
            f" sockets={len(self.sockets)}>"
        )

    # -- changing the state ---------------------------------------------------------------

    def create_user(self, username: str, *, bot: bool = False, token: str | None = None) -> Account:
        """Create a user or a bot with an access token (see ``Directory.create_user``)."""
        account = self.state.create_user(username, bot=bot, token=token)
        self.notify()
        return account

    def perform(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a state method, then broadcast the events it produced.

        Example: ``emulator.perform(emulator.state.save_reaction, me, me, post_id, "eyes")``.
        """
        try:
            return fn(*args, **kwargs)
        finally:
            self.flush()

    def direct_channel(self, a: Account, b: Account) -> Channel:
        """Find or create the DM between two accounts, as ``a``."""
        return self.perform(self.state.direct_channel, a.id, [a.id, b.id])

    def post_as(
        self,
        account: Account,
        channel_id: str,
        message: str,
        *,
        root_id: str = "",
        props: dict[str, Any] | None = None,
        file_ids: list[str] | None = None,
    ) -> Post:
        """Create a post as ``account`` without going through HTTP."""
        body = CreatePost(
            channel_id=channel_id, message=message, root_id=root_id, props=props, file_ids=file_ids
        )
        return self.perform(self.state.create_post, account.id, body)

    def flush(self) -> None:
        """Route the events waiting in the state's outbox to the WebSocket connections."""
        events = self.state.take_events()
        for event in events:
            self.events.append(event)
            self.hub.broadcast(event, self.state.is_member)
        self.notify()

    def notify(self) -> None:
        """Wake every ``wait_*`` caller so it re-checks its condition."""
        self._changed.set()
        self._changed = trio.Event()

    # -- controls -------------------------------------------------------------------------

    def disconnect_all_websockets(self, code: int = 1006) -> int:
        """Close every live socket (1006: without a close frame); return how many."""
        sockets = list(self.sockets)
        for socket in sockets:
            socket.close(code)
        logger.info("closing %d websockets with %d", len(sockets), code)
        return len(sockets)

    def refuse_websockets_for(self, seconds: float) -> None:
        """Answer WebSocket upgrades with 503 for ``seconds`` from now (Trio clock)."""
        self.refuse_websockets_until = trio.current_time() + seconds

    def forget_connections(self) -> None:
        """Drop every WebSocket connection and its resume state (part of a restart)."""
        self.hub.reset()
        self.notify()

    # -- observing ------------------------------------------------------------------------

    def posts_in(self, channel_id: str, *, include_deleted: bool = False) -> list[Post]:
        """The posts of a channel, oldest first, as clients see them."""
        return [
            self.state.render(p)
            for p in self.state.posts.values()
            if p.channel_id == channel_id and (include_deleted or not p.delete_at)
        ]

    def thread(self, root_id: str) -> list[Post]:
        """A live thread, oldest first: the root, then its replies."""
        root = self.state.posts.get(root_id)
        if root is None or root.delete_at:
            return []
        replies = [self.state.posts[r] for r in self.state.replies.get(root_id, [])]
        return [self.state.render(p) for p in [root, *replies] if not p.delete_at]

    def active_connections(self, user_id: str | None = None) -> list[WebConn]:
        """The WebSocket connections that currently have a socket."""
        return [
            c
            for c in self.hub.conns.values()
            if c.active and (user_id is None or c.user_id == user_id)
        ]

    async def wait_for(self, check: Callable[[], T | None]) -> T:
        """Wait until ``check()`` returns something other than ``None``, and return it."""
        while True:
            changed = self._changed
            result = check()
            if result is not None:
                return result
            await changed.wait()

    async def wait_post(self, predicate: Callable[[Post], bool]) -> Post:
        """The first post (oldest first) that satisfies ``predicate``, now or after a change."""

        def check() -> Post | None:
            for post in self.state.posts.values():
                rendered = self.state.render(post)
                if predicate(rendered):
                    return rendered
            return None

        return await self.wait_for(check)

    async def wait_posted(self, predicate: Callable[[Post], bool] | None = None) -> Post:
        """The first post created after this call that satisfies ``predicate``."""
        mark = len(self.state.posts)

        def check() -> Post | None:
            for post in list(self.state.posts.values())[mark:]:
                rendered = self.state.render(post)
                if predicate is None or predicate(rendered):
                    return rendered
            return None

        return await self.wait_for(check)

    async def wait_event(
        self, name: str, predicate: Callable[[WsEvent], bool] | None = None
    ) -> WsEvent:
        """The first event named ``name`` broadcast after this call (and matching)."""
        mark = len(self.events)

        def check() -> WsEvent | None:
            for event in self.events[mark:]:
                if event.event == name and (predicate is None or predicate(event)):
                    return event
            return None

        return await self.wait_for(check)

    async def wait_reaction(
        self, post_id: str, emoji_name: str, *, user_id: str | None = None
    ) -> Reaction:
        """Wait until the post carries that reaction (from ``user_id`` if given)."""

        def check() -> Reaction | None:
            for reaction in self.state.reactions.get(post_id, []):
                if reaction.emoji_name == emoji_name and user_id in (None, reaction.user_id):
                    return reaction
            return None

        return await self.wait_for(check)

    async def wait_websocket_connected(
        self, user_id: str | None = None, *, nth: int | None = None
    ) -> ConnectRecord:
        """Wait for an authenticated WebSocket of ``user_id`` (anyone if ``None``).

        Args:
            user_id: Whose socket to wait for.
            nth: Wait for that user's ``nth`` attachment (1-based) since the emulator
                started, e.g. ``nth=2`` for a reconnect; ``None``: any currently attached.
        """

        def check() -> ConnectRecord | None:
            records = [r for r in self.connects if user_id in (None, r.user_id)]
            if nth is not None:
                return records[nth - 1] if len(records) >= nth else None
            for record in reversed(records):
                conn = self.hub.conns.get(record.connection_id)
                if conn is not None and conn.active:
                    return record
            return None

        return await self.wait_for(check)
