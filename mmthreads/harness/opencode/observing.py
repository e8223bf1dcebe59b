"""What a test or a drill can observe of the stand-in: the event and request logs, and waits.

``OpenCodeStandIn`` inherits these methods.  Each ``wait_*`` re-checks its condition whenever the
stand-in's ``ChangeSignal`` fires (every published event, request and change of a turn), so it
returns at once when the condition already holds, and never polls.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.opencode.agent import Agent
    from mmthreads.harness.opencode.bus import BusEvent
    from mmthreads.harness.opencode.pending import PendingPrompts
    from mmthreads.harness.opencode.signal import ChangeSignal
    from mmthreads.harness.opencode.state import OpenCodeState
    from mmthreads.harness.opencode.stream import EventStream
    from mmthreads.harness.opencode.wire import PermissionRequest, QuestionRequest

__all__ = ["Observing", "RecordedRequest"]


class RecordedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request the server received, and how it was answered."""

    method: str
    path: str
    query: str
    directory: str
    body: bytes
    #: The status sent; ``None`` if the connection was dropped or the stream is still open.
    status: int | None
    #: The fault applied, as ``repr`` of the outcome, if any.
    fault: str | None = None


class Observing:
    """The observing half of ``OpenCodeStandIn``: logs and ``wait_*`` methods."""

    # Set by ``OpenCodeStandIn.__init__``.
    state: OpenCodeState
    agent: Agent
    pending: PendingPrompts
    signal: ChangeSignal
    #: Every HTTP request received, in order (filled by the app).
    requests: list[RecordedRequest]
    #: The SSE streams open now.
    streams: set[EventStream]

    @property
    def events(self) -> list[BusEvent]:
        """Every event published so far (stream-level heartbeats excluded)."""
        return self.state.bus.log

    # -- observation ---------------------------------------------------------------------------

    def is_idle(self, session_id: str) -> bool:
        """Whether the session has no running or queued turn."""
        return not self.agent.busy(session_id)

    async def wait_idle(self, session_id: str) -> None:
        """Wait until the session has no running or queued turn (at once if it has none)."""
        await self.signal.wait_until(lambda: self.is_idle(session_id))

    async def wait_busy(self, session_id: str) -> None:
        """Wait until the session has a turn."""
        await self.signal.wait_until(lambda: not self.is_idle(session_id))

    async def wait_permission_asked(self, session_id: str | None = None) -> PermissionRequest:
        """The oldest pending permission (of ``session_id``), once there is one."""

        def first() -> PermissionRequest | None:
            for pending in self.pending.permissions.values():
                if session_id is None or pending.request.session_id == session_id:
                    return pending.request
            return None

        return await self.signal.wait_for(first)

    async def wait_question_asked(self, session_id: str | None = None) -> QuestionRequest:
        """The oldest pending question (of ``session_id``), once there is one."""

        def first() -> QuestionRequest | None:
            for pending in self.pending.questions.values():
                if session_id is None or pending.request.session_id == session_id:
                    return pending.request
            return None

        return await self.signal.wait_for(first)

    async def wait_event(
        self,
        type_: str,
        *,
        session_id: str | None = None,
        since: int = 0,
        where: Callable[[BusEvent], bool] | None = None,
    ) -> BusEvent:
        """The first event of ``type_`` at log position ``since`` or later, once published.

        Args:
            type_: The event type.
            session_id: Only events about this session.
            since: A log position, e.g. ``len(standin.events)`` taken before acting.
            where: A further predicate.
        """

        def find() -> BusEvent | None:
            for event in self.events[since:]:
                if event.type != type_:
                    continue
                if session_id is not None and event.session_id != session_id:
                    continue
                if where is None or where(event):
                    return event
            return None

        return await self.signal.wait_for(find)

    async def wait_request(
        self, method: str, path_glob: str = "*", *, since: int = 0
    ) -> RecordedRequest:
        """The first recorded request matching ``method`` and ``path_glob`` from ``since`` on."""

        def find() -> RecordedRequest | None:
            for request in self.requests[since:]:
                if request.method == method and fnmatch.fnmatchcase(request.path, path_glob):
                    return request
            return None

        return await self.signal.wait_for(find)

    async def wait_streams(self, count: int = 1) -> None:
        """Wait until at least ``count`` SSE streams are open."""
        await self.signal.wait_until(lambda: len(self.streams) >= count)

    def record_request(self, request: RecordedRequest) -> None:
        """Add to the request log (the app calls this)."""
        self.requests.append(request)
        self.signal.notify()
