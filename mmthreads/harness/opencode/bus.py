"""The event bus: every event the stand-in publishes, in order, fanned out to subscribers.

Sans-IO: ``publish`` encodes the event once (a snapshot of the objects at that moment), appends
it to the log and hands it to each subscriber's ``deliver`` callback, synchronously.  The Trio
layer's subscribers put it on a bounded memory channel that an SSE stream drains.

Two views of one event, as on the real server (reference §3.1):

- ``/event?directory=D`` gets the events of instance ``D``: ``data: {id, type, properties}``;
- ``/global/event`` gets every event wrapped as ``{directory, project?, payload}``;
  ``server.connected`` and ``server.heartbeat`` carry only ``payload``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BusEvent", "EventBus", "Subscriber", "frame"]

logger = logging.getLogger(__name__)

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder()


class _GlobalEnvelope(msgspec.Struct, omit_defaults=True):
    payload: msgspec.Raw
    directory: str | None = None
    project: str | None = None


class BusEvent(msgspec.Struct, frozen=True):
    """One published event.

    Attributes:
        seq: Position in the bus's log (0-based).
        directory: The instance it belongs to; ``"global"`` for ``project.updated``; ``None``
            for stream-level events (``server.connected``, ``server.heartbeat``).
        project: The project id for the ``/global/event`` envelope, if any.
        type: The event type, e.g. ``message.part.updated``.
        data: The encoded JSON of the event object ``{id?, type, properties}``.
    """

    seq: int
    directory: str | None
    project: str | None
    type: str
    data: bytes

    def payload(self) -> dict[str, Any]:
        """The event object, decoded."""
        decoded: dict[str, Any] = _decoder.decode(self.data)
        return decoded

    @property
    def properties(self) -> dict[str, Any]:
        """The event's ``properties``, decoded."""
        props: dict[str, Any] = self.payload()["properties"]
        return props

    @property
    def session_id(self) -> str | None:
        """The session the event is about, read the way a bridge reads it (reference §5)."""
        props = self.properties
        for key in ("sessionID",):
            if isinstance(props.get(key), str):
                return str(props[key])
        for holder in ("info", "part"):
            inner = props.get(holder)
            if isinstance(inner, dict) and isinstance(inner.get("sessionID"), str):
                return str(inner["sessionID"])
        info = props.get("info")
        if self.type.startswith("session.") and isinstance(info, dict):
            return str(info.get("id"))
        return None


def frame(event: BusEvent, *, wrap: bool) -> bytes:
    """The SSE frame for ``event``: ``data: <json>`` and a blank line, nothing else.

    Args:
        event: The event to frame.
        wrap: Wrap it in the ``/global/event`` envelope.
    """
    if wrap:
        envelope = _GlobalEnvelope(
            payload=msgspec.Raw(event.data), directory=event.directory, project=event.project
        )
        body = _encoder.encode(envelope)
    else:
        body = event.data
    return b"data: " + body + b"\n\n"


class Subscriber(Protocol):
    """Receives events as they are published."""

    #: ``None``: every directory (``/global/event``); else only this instance's events.
    directory: str | None

    def deliver(self, event: BusEvent) -> None:
        """Take one event; must not block."""


class EventBus:
    """Publishes events to a log and to subscribers.

    Args:
        make_event_id: Returns a new ``evt_…`` id, or ``None`` to send events without one
            (servers before about 1.14).
    """

    def __init__(self, make_event_id: Callable[[], str | None]) -> None:
        self._make_event_id = make_event_id
        self._subscribers: list[Subscriber] = []
        #: Every event published, in order.
        self.log: list[BusEvent] = []
        #: Called after each publish (the Trio layer wakes its waiters).
        self.on_publish: Callable[[BusEvent], None] | None = None

    def __repr__(self) -> str:
        return f"<EventBus events={len(self.log)} subscribers={len(self._subscribers)}>"

    def subscribe(self, subscriber: Subscriber) -> None:
        """Start delivering events to ``subscriber``."""
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop delivering events to ``subscriber`` (no error if it is not subscribed)."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are attached."""
        return len(self._subscribers)

    def make(self, type_: str, properties: object, *, directory: str | None = None) -> BusEvent:
        """Encode an event without publishing it (stream-level events such as heartbeats)."""
        return BusEvent(-1, directory, None, type_, self._encode(type_, properties))

    def publish(
        self, directory: str, type_: str, properties: object, *, project: str | None = None
    ) -> BusEvent:
        """Encode, log and deliver one event of instance ``directory``.

        Args:
            directory: The instance (``"global"`` for server-wide events).
            type_: The event type.
            properties: The ``properties`` object (Structs, dicts, lists …).
            project: The project id shown in the ``/global/event`` envelope.

        Returns:
            The published event.
        """
        event = BusEvent(len(self.log), directory, project, type_, self._encode(type_, properties))
        self.log.append(event)
        logger.debug("publish %s %s", type_, directory)
        for subscriber in list(self._subscribers):
            if subscriber.directory is None or subscriber.directory == directory:
                subscriber.deliver(event)
        if self.on_publish is not None:
            self.on_publish(event)
        return event

    def _encode(self, type_: str, properties: object) -> bytes:
        event_id = self._make_event_id()
        if event_id is None:
            return _encoder.encode({"type": type_, "properties": properties})
        return _encoder.encode({"id": event_id, "type": type_, "properties": properties})
