"""One SSE subscription (``/event`` or ``/global/event``) with heartbeats and faults.

The loop is transport-agnostic: it hands finished frames (``data: {json}\\n\\n``) to an async
``send`` callable.  The ASGI app passes one that writes response-body chunks; an in-memory test
passes a memory channel's ``send``.  Per stream, as on the real server (reference §3.1):

- ``server.connected`` first, then the instance's events (all events, wrapped, for global);
- ``server.heartbeat`` every ``heartbeat_interval`` seconds, counted from the connect;
- no ``id:``/``event:``/``retry:`` lines, no replay.

Fault points (``faults.py``): ``sse:event:<type>`` before each event and ``sse:heartbeat`` before
each heartbeat.  ``Drop`` skips the frame, ``Delay`` holds it, ``CutStream`` ends the stream,
``Silence(s)`` stalls the stream for ``s`` seconds (frames queued meanwhile follow afterwards, as
over a stalled connection).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Final

import trio

from mmthreads.harness.faults import CutStream, Delay, Drop, Ok, Silence
from mmthreads.harness.opencode.bus import BusEvent, frame

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mmthreads.harness.faults import FaultPlan
    from mmthreads.harness.opencode.bus import EventBus

__all__ = ["STREAM_BUFFER", "EventStream"]

logger = logging.getLogger(__name__)

#: Events buffered per stream; a client that falls this far behind is cut off.
STREAM_BUFFER: Final = 4096


class EventStream:
    """An open subscription: the bus delivers into it, ``run`` drains it.

    Args:
        directory: The instance to follow; ``None`` for ``/global/event``.
        heartbeat_interval: Seconds between heartbeats; ``None`` for none (old servers).
    """

    def __init__(self, directory: str | None, *, heartbeat_interval: float | None) -> None:
        self.directory = directory
        self.heartbeat_interval = heartbeat_interval
        self.scope = trio.CancelScope()
        self.frames_sent = 0
        self._send, self._receive = trio.open_memory_channel[BusEvent](STREAM_BUFFER)

    def __repr__(self) -> str:
        where = "global" if self.directory is None else self.directory
        return f"<EventStream {where} sent={self.frames_sent}>"

    @property
    def wrap(self) -> bool:
        """Whether frames use the ``/global/event`` envelope."""
        return self.directory is None

    def deliver(self, event: BusEvent) -> None:
        """Queue an event (called by the bus, synchronously)."""
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            logger.warning("%r fell %d events behind; cutting it", self, STREAM_BUFFER)
            self.cut()
        except trio.ClosedResourceError:
            pass

    def cut(self) -> None:
        """End the stream: the client sees a clean end of the response."""
        self.scope.cancel()

    async def run(
        self,
        bus: EventBus,
        plan: FaultPlan,
        send: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Send ``server.connected``, then events and heartbeats, until cut.

        The caller subscribes the stream to ``bus`` before and unsubscribes it after, so no
        event published in between is missed.
        """
        with self.scope, self._receive, self._send:
            if not await self._emit(bus.make("server.connected", {}), plan, send):
                return
            interval = self.heartbeat_interval
            next_beat = trio.current_time() + interval if interval else math.inf
            while True:
                event: BusEvent | None = None
                with trio.move_on_at(next_beat):
                    event = await self._receive.receive()
                if event is None:
                    beat = bus.make("server.heartbeat", {})
                    if not await self._emit(beat, plan, send, point="sse:heartbeat"):
                        return
                    # Count from this beat, so a stall is followed by one beat, not a burst.
                    next_beat = trio.current_time() + (interval or math.inf)
                elif not await self._emit(event, plan, send):
                    return

    async def _emit(
        self,
        event: BusEvent,
        plan: FaultPlan,
        send: Callable[[bytes], Awaitable[None]],
        *,
        point: str | None = None,
    ) -> bool:
        """Send one frame after its fault point; ``False`` if the stream must end."""
        target = point or f"sse:event:{event.type}"
        outcome = plan.decide(target, now=trio.current_time())
        match outcome:
            case Ok():
                pass
            case Drop():
                logger.info("%r drops %s", self, event.type)
                return True
            case Delay(seconds=seconds) | Silence(seconds=seconds):
                logger.info("%r holds %s for %.3f s", self, event.type, seconds)
                await trio.sleep(seconds)
            case CutStream():
                logger.info("%r cut before %s", self, event.type)
                return False
            case _:
                logger.warning("%r: %r does not apply to %s; ignored", self, outcome, target)
        await send(frame(event, wrap=self.wrap))
        self.frames_sent += 1
        return True
