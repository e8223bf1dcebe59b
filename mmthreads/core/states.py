"""The states a session thread can be in (see ``thread_machine`` for the lifecycle)."""

from __future__ import annotations

import enum


class ThreadState(enum.Enum):
    """Lifecycle state of one session thread; the values are the mapping file's ``status``."""

    #: Prompts posted in the thread are forwarded to the session.
    ACTIVE = "active"
    #: The bridge lost the session's OpenCode server; prompts are queued (bounded).
    DISCONNECTED = "disconnected"
    #: The session terminated normally; the thread is read-only.  Final.
    ENDED = "ended"
    #: The session no longer exists on its server; the thread is read-only.  Final.
    ORPHANED = "orphaned"

    @property
    def is_final(self) -> bool:
        """Whether no transition leaves this state."""
        return self in (ThreadState.ENDED, ThreadState.ORPHANED)
