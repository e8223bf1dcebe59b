"""The OpenCode event stream: SSE in, normalised events out, reconnecting forever.

Theory of operation
-------------------
``run_event_stream`` follows one server.  Each connection, in order
(``reference/opencode-server-api.md`` §3.1, §3.5, §6):

1. ``GET /global/health`` gives the version (a server without the route reports ``""``).
2. ``GET /global/event`` streams every instance's events.  A server without it (404, or the
   web UI's HTML) gets one ``GET /event?directory=…`` per directory the bridge follows; the
   set is re-read every few seconds, so a newly followed directory gets its stream.
3. The first frame (``server.connected``) is announced as ``AgentStreamConnected(version)``;
   every frame after it is decoded (``mmthreads.wire.opencode``) and its events are sent on.
   A frame that does not decode is logged and skipped.
4. The connection is lost when a stream ends (the server closed it, or disposed the
   instance), breaks, or stays silent for ``heartbeat_timeout`` seconds.  The silence watchdog
   is armed only once a ``server.heartbeat`` has been seen from this server: 1.0-era servers
   send none, and a quiet project is not a dead one.
5. On loss, ``AgentStreamLost(reason)`` goes out once (not again for each failed reconnect),
   then the runner sleeps ``policy.delay(attempt)`` and starts over.  The attempt count
   restarts after every successful connection; ``policy.max_attempts`` is not applied: the
   stream is the bridge's only way to hear the server, so it never gives up.

The server keeps no replay buffer, so events are missed while disconnected: after each
``AgentStreamConnected`` the runtime calls :func:`reconcile` to poll what changed.  Waits use
``trio.sleep`` and cancel scopes only, so tests run it under ``autojump_clock``.
"""

from __future__ import annotations

import logging
import math
import re
from functools import partial
from typing import TYPE_CHECKING, Final, Literal

import msgspec
import trio

from mmthreads.core import agent_events as ae
from mmthreads.errors import AgentBadResponse, AgentCallFailed, AgentNotFound, AgentWireError
from mmthreads.wire.opencode import decode_frame

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from mmthreads.adapters.opencode import OpenCodeClient
    from mmthreads.adapters.opencode_http import EventStream
    from mmthreads.core.backoff import RetryPolicy

__all__ = ["ReconcileResult", "SseParser", "reconcile", "run_event_stream"]

logger = logging.getLogger(__name__)

#: A frame larger than this (bytes) breaks the stream rather than the bridge's memory.
MAX_FRAME: Final = 64 * 1024 * 1024
#: Seconds between looks at the followed directories when each has its own ``/event``.
DIRECTORY_POLL: Final = 5.0

_EOL: Final = re.compile(rb"\r\n|\r|\n")


class SseParser:
    """Server-sent events framing, sans-IO: feed bytes, get each complete event's ``data``.

    Lines end with ``\\n``, ``\\r\\n`` or ``\\r`` (also split across chunks); a blank line ends
    an event; several ``data:`` lines join with ``\\n``; comments and the ``id``, ``event`` and
    ``retry`` fields are ignored (OpenCode sends none and cannot resume).
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._size = 0
        self._max_frame = max_frame

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add received bytes; return the data of every event they complete.

        Raises:
            AgentWireError: An event grew beyond ``max_frame`` bytes.
        """
        self._buffer += chunk
        events: list[bytes] = []
        start = 0
        while match := _EOL.search(self._buffer, start):
            if match.group() == b"\r" and match.end() == len(self._buffer):
                break  # maybe the first half of a "\r\n" split across chunks
            self._line(bytes(self._buffer[start : match.start()]), events)
            start = match.end()
        del self._buffer[:start]
        if len(self._buffer) + self._size > self._max_frame:
            raise AgentWireError(f"an event is larger than {self._max_frame} bytes")
        return events

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
            self._data = []
            self._size = 0
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            value = value.removeprefix(b" ")
            self._data.append(value)
            self._size += len(value) + 1


class ReconcileResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the server knows after a reconnect (``reference/opencode-server-api.md`` §3.5).

    Attributes:
        sessions: Every session found: the known ones still there, and those of the followed
            directories (including sessions created while the stream was down).
        gone: Known sessions the server no longer has (deleted).
        statuses: Busy or retrying sessions; a session not listed is idle.
        permissions: Pending permissions of the followed directories.
        questions: Pending questions of the followed directories.
    """

    sessions: dict[str, ae.SessionInfo]
    gone: frozenset[str]
    statuses: dict[str, ae.SessionStatus]
    permissions: tuple[ae.PermissionAsked, ...]
    questions: tuple[ae.QuestionAsked, ...]

    @property
    def archived(self) -> frozenset[str]:
        """Sessions that are archived (they still exist)."""
        return frozenset(s for s, info in self.sessions.items() if info.archived_ms is not None)

    def status_of(self, session_id: str) -> Literal["busy", "idle", "retry"]:
        """The session's status (``idle`` when the server lists none)."""
        status = self.statuses.get(session_id)
        return "idle" if status is None else status.status


async def reconcile(
    client: OpenCodeClient, directories: Iterable[str], known_session_ids: Iterable[str]
) -> ReconcileResult:
    """Poll the server for what the bridge may have missed while its stream was down.

    Looks up each known session by id (the lookup spans every project), then lists each
    followed directory's sessions, statuses, pending permissions and questions.  Routes an
    older server lacks (``/permission``, ``/question``: 404 or HTML) count as nothing pending.

    Args:
        client: The server's client.
        directories: The project directories the bridge follows there.
        known_session_ids: The sessions the bridge has threads for.

    Raises:
        AgentCallFailed: The server could not answer (e.g. it went down again).
    """
    sessions: dict[str, ae.SessionInfo] = {}
    gone: set[str] = set()
    for session_id in known_session_ids:
        try:
            sessions[session_id] = await client.get_session(session_id, "")
        except AgentNotFound:
            gone.add(session_id)
    statuses: dict[str, ae.SessionStatus] = {}
    permissions: list[ae.PermissionAsked] = []
    questions: list[ae.QuestionAsked] = []
    for directory in dict.fromkeys(directories):
        for info in await client.list_sessions(directory):
            sessions.setdefault(info.session_id, info)
        try:
            statuses.update(await client.session_status(directory))
        except (AgentNotFound, AgentBadResponse):
            logger.debug("%s has no session status route", client.server)
        try:
            permissions += await client.list_permissions(directory)
        except (AgentNotFound, AgentBadResponse):
            logger.debug("%s has no permission list route", client.server)
        try:
            questions += await client.list_questions(directory)
        except (AgentNotFound, AgentBadResponse):
            logger.debug("%s has no question routes", client.server)
    return ReconcileResult(
        sessions=sessions,
        gone=frozenset(gone),
        statuses=statuses,
        permissions=tuple(permissions),
        questions=tuple(questions),
    )


class _Follower:
    """The state of one ``run_event_stream``: the client, where events go, and the watchdog."""

    def __init__(
        self,
        client: OpenCodeClient,
        send_channel: trio.MemorySendChannel[ae.AgentEvent],
        directories: Callable[[], Iterable[str]],
        heartbeat_timeout: float,
    ) -> None:
        self.client = client
        self.send = send_channel
        self.directories = directories
        self.heartbeat_timeout = heartbeat_timeout
        #: Whether this server sends heartbeats; arms the watchdog (§3.5).
        self.heartbeats = False
        #: Whether the current connection was announced.
        self.connected = False
        self.per_directory = False

    async def announce(self, version: str) -> None:
        if not self.connected:
            self.connected = True
            logger.info(
                "OpenCode event stream of %s is up (version %s)", self.client.server, version
            )
            await self.send.send(
                ae.AgentStreamConnected(server=self.client.server, version=version)
            )

    async def connect_once(self) -> str:
        """One connection, from health check to loss; returns why it was lost."""
        try:
            _healthy, version = await self.client.health()
        except (AgentNotFound, AgentBadResponse):
            version = ""  # older than /global/health: still worth following
        except AgentCallFailed as exc:
            return f"health check failed: {exc}"
        announce = partial(self.announce, version)
        try:
            async with self.client.open_global_events() as stream:
                self.per_directory = False
                return await self.pump(stream, directory="", wrapped=True, on_frame=announce)
        except (AgentNotFound, AgentBadResponse) as exc:
            if not self.per_directory:
                logger.info("%s has no /global/event (%s); one /event per directory", self, exc)
            self.per_directory = True
        except AgentCallFailed as exc:
            return f"could not open the event stream: {exc}"
        return await self.follow_directories(announce)

    def __repr__(self) -> str:
        return f"<event stream of {self.client.server}>"

    async def pump(
        self,
        stream: EventStream,
        *,
        directory: str,
        wrapped: bool,
        on_frame: Callable[[], Awaitable[None]],
    ) -> str:
        """Read one stream until it ends, breaks or goes silent; returns why."""
        parser = SseParser()
        server = self.client.server
        while True:
            # Only the wait for bytes is watched: a slow consumer is not a silent server.
            timeout = self.heartbeat_timeout if self.heartbeats else math.inf
            chunk: bytes | None = None
            with trio.move_on_after(timeout):
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return "the server closed the event stream"
                except AgentCallFailed as exc:
                    return f"the event stream broke: {exc}"
            if chunk is None:
                return f"no events or heartbeats for {timeout:g} s"
            try:
                payloads = parser.feed(chunk)
            except AgentWireError as exc:
                return str(exc)
            for data in payloads:
                try:
                    frame = decode_frame(data, server=server, directory=directory, wrapped=wrapped)
                except AgentWireError as exc:
                    logger.warning("%r: skipping a frame: %s", self, exc.reason)
                    continue
                await on_frame()
                if frame.type == "server.heartbeat" and not self.heartbeats:
                    logger.debug("%r sends heartbeats; silence watchdog armed", self)
                    self.heartbeats = True
                for event in frame.events:
                    await self.send.send(event)

    async def follow_directories(self, announce: Callable[[], Awaitable[None]]) -> str:
        """One ``/event`` stream per followed directory; the first to end ends them all."""
        lost: list[str] = []
        waiting: set[str] = set()

        async def follow(
            directory: str, nursery: trio.Nursery, *, task_status: trio.TaskStatus[trio.CancelScope]
        ) -> None:
            async def first_frame() -> None:
                waiting.discard(directory)
                if not waiting:
                    await announce()

            with trio.CancelScope() as scope:
                task_status.started(scope)
                try:
                    async with self.client.open_events(directory) as stream:
                        reason = await self.pump(
                            stream, directory=directory, wrapped=False, on_frame=first_frame
                        )
                except AgentCallFailed as exc:
                    reason = f"could not open the event stream: {exc}"
                lost.append(f"{directory or 'default directory'}: {reason}")
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            streams: dict[str, trio.CancelScope] = {}
            while True:
                # "" follows the server's own directory while no directory is configured.
                wanted = list(dict.fromkeys(self.directories())) or [""]
                for gone in streams.keys() - set(wanted):
                    streams.pop(gone).cancel()
                new = [directory for directory in wanted if directory not in streams]
                if not self.connected:
                    # All of them before any starts: the first may answer at once.
                    waiting.update(new)
                for directory in new:
                    streams[directory] = await nursery.start(follow, directory, nursery)
                await trio.sleep(DIRECTORY_POLL)
        return lost[0] if lost else "the event streams ended"


async def run_event_stream(
    client: OpenCodeClient,
    send_channel: trio.MemorySendChannel[ae.AgentEvent],
    *,
    directories: Callable[[], Iterable[str]],
    policy: RetryPolicy,
    heartbeat_timeout: float = 30.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow one OpenCode server's events forever (see the module docstring).

    Returns only when the receiving end of ``send_channel`` is closed.

    Args:
        client: The server's client.
        send_channel: Where the normalised events go, in order.
        directories: The project directories to follow when the server has no
            ``/global/event``; called again every few seconds.
        policy: Reconnect backoff (``max_attempts`` is ignored: it never gives up).
        heartbeat_timeout: Seconds of silence after which a heartbeat-sending server's stream
            counts as lost.
        task_status: Started at once; the first ``AgentStreamConnected`` or
            ``AgentStreamLost`` says how the first connection went.
    """
    follower = _Follower(client, send_channel, directories, heartbeat_timeout)
    task_status.started()
    attempt = 0
    lost_sent = False
    try:
        while True:
            follower.connected = False
            reason = await follower.connect_once()
            if follower.connected:
                attempt = 0
                lost_sent = False
            if not lost_sent:
                lost_sent = True
                await send_channel.send(ae.AgentStreamLost(server=client.server, reason=reason))
            attempt += 1
            delay = policy.delay(attempt)
            logger.warning("%r lost (%s); reconnect %d in %.3g s", follower, reason, attempt, delay)
            await trio.sleep(delay)
    except* (trio.BrokenResourceError, trio.ClosedResourceError):
        # Raised alone (global stream) or in a group (one task per directory stream).
        logger.info("%r: nobody reads the events any more; stopping", follower)
