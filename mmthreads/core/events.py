"""What a session thread's state machine is told: the events ``ThreadSession.handle`` accepts.

Events are frozen msgspec Structs, so they are hashable, cheap to build and compare, and can be
written to a log or a recorded trace and read back exactly.  The set is *closed*: it belongs to
mmthreads, so it is a tagged union (``"type"`` names the class) and code dispatches on it with
``match``.  The adapters build these events from what the servers say; nothing here knows about
HTTP, WebSockets or the clock (times arrive as ``at_ms``, milliseconds since the Unix epoch).

Which event causes which transition is documented in ``mmthreads.core.thread_machine``.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

__all__ = [
    "AgentLost",
    "AgentRestored",
    "EndReason",
    "Model",
    "PromptReceived",
    "SessionEnded",
    "SessionGone",
    "ThreadEvent",
]


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """Policy base of the core's data types.

    ``frozen``: an event or action is a fact; nobody may change it once it is in a queue or a log,
    and frozen Structs hash, so tests can put them in sets.  ``kw_only``: call sites name every
    field, and fields with defaults may sit anywhere, so adding one never breaks a caller.

    msgspec passes these options on to subclasses, but mypy's dataclass model of Structs does
    not know that, so every subclass repeats ``frozen=True, kw_only=True``.
    """


class _EventBase(Model, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of the thread events; the ``type`` tag is the class name."""


#: Why OpenCode ended a session: it was deleted, archived, or explicitly ended.
EndReason: TypeAlias = Literal["deleted", "archived", "ended"]


class SessionEnded(_EventBase, frozen=True, kw_only=True):
    """The session terminated normally.

    Attributes:
        reason: Which way OpenCode ended it.
        at_ms: When it ended (ms since the epoch), shown in the final post and persisted as
            ``endedAt``.
    """

    reason: EndReason
    at_ms: int


class AgentLost(_EventBase, frozen=True, kw_only=True):
    """The bridge lost the session's OpenCode server (event stream down, server unreachable).

    Attributes:
        reason: A short description for the notice and the log, e.g. ``"event stream closed"``.
    """

    reason: str


class AgentRestored(_EventBase, frozen=True, kw_only=True):
    """The connection to the OpenCode server is back and the bridge has looked the session up.

    Attributes:
        session_exists: Whether the server still knows the session.  The machine's guard reads
            this to choose between *active* and *orphaned*.
    """

    session_exists: bool


class SessionGone(_EventBase, frozen=True, kw_only=True):
    """The session no longer exists when the bridge checks (e.g. after a restart of the bridge)."""


class PromptReceived(_EventBase, frozen=True, kw_only=True):
    """The owner posted in the session's thread: a prompt for exactly this session.

    Attributes:
        post_id: The Mattermost post that carries the prompt (replies and links point at it).
        text: The message as posted.
        file_ids: Mattermost file ids attached to the post, in posting order.
        at_ms: When the post was created (ms since the epoch).
    """

    post_id: str
    text: str
    file_ids: tuple[str, ...] = ()
    at_ms: int


#: Everything ``ThreadSession.handle`` accepts.
ThreadEvent: TypeAlias = SessionEnded | AgentLost | AgentRestored | SessionGone | PromptReceived
