"""The WebSocket hub, sans-IO: connections, per-connection ``seq``, routing, resume (§3).

Theory of operation, after ``app/platform/web_conn.go`` and ``web_hub.go``:

- A *connection* (``WebConn``) outlives its socket.  When the socket goes, the connection turns
  inactive and keeps collecting events in ``pending`` (the server's 256-slot send channel); a
  full queue drops the connection.  Inactive connections are forgotten after ``inactive_ttl_ms``.
- Events are numbered when *written*, not when queued: ``next_frame`` gives the next event its
  ``seq`` (starting at 0 with ``hello``) and keeps the encoded frame in a 128-entry *dead queue*.
  Replies to client actions share the queue but take no ``seq``.
- A socket upgraded *with* a token may resume with ``connection_id`` + ``sequence_number``:
  found and the wanted ``seq`` still in the dead queue -> replay from there, no ``hello``
  (lossless); found and nothing missed -> continue (lossless); found but frames lost -> new
  ``connection_id``, ``seq`` back to 0, fresh ``hello``; not found -> a new connection.  A
  malformed ``connection_id``, or one without ``sequence_number``, refuses the socket.
  Sockets authenticated by ``authentication_challenge`` never resume.

The I/O layer (``app.py``) owns the sockets; it registers a ``wakeup`` callback per
connection, writes what ``next_frame`` returns and reports disconnects with ``detach``.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import msgspec

from mmthreads.harness.mattermost.ids import is_valid_id
from mmthreads.harness.mattermost.models import Broadcast, Envelope, WsResponse, encode

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.mattermost.events import WsEvent

__all__ = [
    "DEAD_QUEUE_SIZE",
    "SEND_QUEUE_SIZE",
    "Hub",
    "QueuedEvent",
    "QueuedReply",
    "Resume",
    "WebConn",
]

logger = logging.getLogger(__name__)

SEND_QUEUE_SIZE: Final = 256
DEAD_QUEUE_SIZE: Final = 128
#: Droppable events are skipped once a queue is half full (``sendSlowWarn``).
_SLOW_EVENTS: Final = frozenset({"typing", "status_change", "multiple_channels_viewed"})


class Resume(enum.Enum):
    """How a socket was attached to a connection."""

    #: A new connection: fresh ``connection_id``, ``hello`` at ``seq`` 0.
    FRESH = "fresh"
    #: Resumed with frames replayed from the dead queue.
    REPLAYED = "replayed"
    #: Resumed with nothing missed.
    LOSSLESS = "lossless"
    #: Resumed, but frames were lost: new ``connection_id``, ``hello`` at ``seq`` 0.
    LOST = "lost"


class QueuedEvent(msgspec.Struct, frozen=True):
    """An event waiting in a connection's send queue (not yet numbered)."""

    event: str
    data: dict[str, Any]
    broadcast: Broadcast


class QueuedReply(msgspec.Struct, frozen=True):
    """A reply to a client action waiting in the send queue."""

    response: WsResponse


class WebConn:
    """One logical WebSocket connection of a user (it may outlive several sockets)."""

    def __init__(self, connection_id: str, user_id: str, *, resumable: bool) -> None:
        self.connection_id = connection_id
        self.user_id = user_id
        #: Whether the socket was authenticated on the upgrade (only those can resume).
        self.resumable = resumable
        self.active = True
        #: The ``seq`` the next event gets.
        self.sequence = 0
        self.reuse_count = 0
        self.pending: deque[QueuedEvent | QueuedReply] = deque()
        #: ``(seq, frame)`` of recently written events.
        self.dead: deque[tuple[int, bytes]] = deque(maxlen=DEAD_QUEUE_SIZE)
        #: Frames to write before ``pending`` (a resume replay), already numbered.
        self.replay: deque[bytes] = deque()
        self.inactive_since = 0
        #: Set once the hub dropped the connection; its socket must close.
        self.dropped = False
        #: Called whenever there is something new to write (set by the I/O layer).
        self.wakeup: Callable[[], None] | None = None
        #: The socket currently attached (opaque to the hub).
        self.owner: object | None = None

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        ids = f"{self.connection_id[:6]} user={self.user_id[:6]}"
        return f"<WebConn {ids} {state} seq={self.sequence}>"

    def has_output(self) -> bool:
        """Whether ``Hub.next_frame`` has something to return."""
        return bool(self.replay or self.pending)

    def _notify(self) -> None:
        if self.wakeup is not None:
            self.wakeup()


class Hub:
    """All WebSocket connections of the emulator.

    Args:
        new_id: Makes connection ids.
        server_version: ``hello.data.server_version``.
        inactive_ttl_ms: How long an inactive connection can still be resumed.
    """

    def __init__(
        self,
        new_id: Callable[[], str],
        *,
        server_version: str,
        inactive_ttl_ms: int = 5 * 60 * 1000,
    ) -> None:
        self._new_id = new_id
        self.server_version = server_version
        self.inactive_ttl_ms = inactive_ttl_ms
        self.conns: dict[str, WebConn] = {}

    def connect(
        self,
        user_id: str,
        *,
        resumable: bool,
        now: int,
        connection_id: str = "",
        sequence_number: str | None = None,
    ) -> tuple[WebConn, Resume] | None:
        """Attach an authenticated socket; ``None`` means: close the socket at once."""
        self.reap(now)
        found = None
        if resumable and connection_id:
            if not is_valid_id(connection_id):
                return None
            found = self.conns.get(connection_id)
            if found is not None and (found.active or found.user_id != user_id):
                found = None
        if found is None:
            conn = WebConn(self._new_id(), user_id, resumable=resumable)
            conn.pending.append(self._hello(conn))
            self.conns[conn.connection_id] = conn
            logger.debug("new %r", conn)
            return conn, Resume.FRESH
        try:
            seq = int(sequence_number) if sequence_number is not None else -1
        except ValueError:
            seq = -1
        if seq < 0:
            return None
        conn = found
        conn.active = True
        conn.reuse_count += 1
        conn.replay.clear()
        outcome = Resume.LOSSLESS
        seqs = [s for s, _ in conn.dead]
        if seq != 0 and seq in seqs:
            conn.sequence = seq
            conn.replay.extend(frame for s, frame in conn.dead if s >= seq)
            outcome = Resume.REPLAYED
        elif seq != 0 and seqs and seqs[-1] != seq - 1:
            del self.conns[conn.connection_id]
            conn.connection_id = self._new_id()
            self.conns[conn.connection_id] = conn
            conn.dead.clear()
            conn.sequence = 0
            conn.pending.appendleft(self._hello(conn))
            outcome = Resume.LOST
        else:
            conn.sequence = seq
        logger.debug("resumed %r from seq %d: %s", conn, seq, outcome.value)
        return conn, outcome

    def _hello(self, conn: WebConn) -> QueuedEvent:
        data = {"connection_id": conn.connection_id, "server_version": self.server_version}
        return QueuedEvent("hello", data, Broadcast(user_id=conn.user_id))

    def detach(self, conn: WebConn, *, now: int, owner: object) -> None:
        """The socket ``owner`` of ``conn`` is gone: keep ``conn``, inactive, for a resume.

        Does nothing if another socket has attached to ``conn`` meanwhile.
        """
        if conn.owner is not owner:
            return
        conn.owner = None
        conn.active = False
        conn.inactive_since = now
        conn.wakeup = None

    def reap(self, now: int) -> None:
        """Forget inactive connections older than ``inactive_ttl_ms``."""
        for conn in list(self.conns.values()):
            if not conn.active and now - conn.inactive_since > self.inactive_ttl_ms:
                self._drop(conn)

    def reset(self) -> None:
        """Forget every connection (a server restart)."""
        for conn in list(self.conns.values()):
            self._drop(conn)

    def _drop(self, conn: WebConn) -> None:
        self.conns.pop(conn.connection_id, None)
        conn.dropped = True
        conn._notify()

    def broadcast(self, event: WsEvent, is_member: Callable[[str, str], bool]) -> int:
        """Queue ``event`` on every connection it is for; return how many got it."""
        count = 0
        for conn in list(self.conns.values()):
            if not self._should_send(conn, event.broadcast, is_member):
                continue
            if len(conn.pending) >= SEND_QUEUE_SIZE // 2 and event.event in _SLOW_EVENTS:
                continue
            if len(conn.pending) >= SEND_QUEUE_SIZE:
                logger.info("send queue of %r is full: dropping the connection", conn)
                self._drop(conn)
                continue
            conn.pending.append(
                QueuedEvent(event.event, event.data_for(conn.user_id), event.broadcast)
            )
            conn._notify()
            count += 1
        return count

    @staticmethod
    def _should_send(conn: WebConn, b: Broadcast, is_member: Callable[[str, str], bool]) -> bool:
        # The order of checks is the server's (WebConn.ShouldSendEvent); nobody is an admin.
        if b.contains_sensitive_data is True:
            return False
        if b.connection_id:
            return conn.connection_id == b.connection_id
        if conn.connection_id == b.omit_connection_id:
            return False
        if b.user_id:
            return conn.user_id == b.user_id
        if b.omit_users and conn.user_id in b.omit_users:
            return False
        if b.channel_id:
            return is_member(conn.user_id, b.channel_id)
        return not b.team_id

    def queue_reply(self, conn: WebConn, response: WsResponse) -> None:
        """Queue a reply to a client action behind the events already queued."""
        conn.pending.append(QueuedReply(response))
        conn._notify()

    def peek(self, conn: WebConn) -> QueuedEvent | QueuedReply | None:
        """The next queued item, if the replay is done (to decide faults before writing)."""
        if conn.replay or not conn.pending:
            return None
        return conn.pending[0]

    def next_frame(self, conn: WebConn) -> bytes | None:
        """Take the next frame to write, numbering events; ``None`` if there is none."""
        if conn.replay:
            conn.sequence += 1
            return conn.replay.popleft()
        if not conn.pending:
            return None
        item = conn.pending.popleft()
        if isinstance(item, QueuedReply):
            return encode(item.response)
        frame = encode(Envelope(item.event, item.data, item.broadcast, conn.sequence))
        conn.dead.append((conn.sequence, frame))
        conn.sequence += 1
        return frame

    def discard_next(self, conn: WebConn) -> None:
        """Drop the next queued item without numbering it (a ``Drop`` fault)."""
        if conn.pending:
            conn.pending.popleft()
