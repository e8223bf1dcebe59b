"""Every exception mmthreads raises on purpose.

The tree::

    MmthreadsError
    ├── ConfigError              bad or missing configuration; the service refuses to start
    ├── InvalidTransition        an event a session thread's state cannot take; state unchanged
    ├── MappingFileError         the mapping file cannot be used
    │   ├── MappingCorruptError  not JSON, or not a version-1 mapping object; kept aside as a backup
    │   ├── MappingVersionError  the file was written by a newer version; never overwritten
    │   └── MappingConflictError a change would break one thread per session
    ├── ChatError                talking to Mattermost failed
    └── AgentError               talking to OpenCode failed

This module imports nothing else from mmthreads.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ChatError",
    "ConfigError",
    "InvalidTransition",
    "MappingConflictError",
    "MappingCorruptError",
    "MappingFileError",
    "MappingVersionError",
    "MmthreadsError",
]


class MmthreadsError(Exception):
    """Root of every error mmthreads raises on purpose."""


class ConfigError(MmthreadsError):
    """The configuration is missing something or contradicts itself."""


class InvalidTransition(MmthreadsError):
    """A session thread was given an event its current state does not accept.

    The thread's state, queue and pending actions are left exactly as they were.  The session
    runner decides whether this is a bug or a benign race (e.g. a second "connection lost" while
    already disconnected) and logs it with the fields below.

    Attributes:
        session_id: The OpenCode session whose thread refused the event.
        state: The thread's state, as the mapping file's ``status`` string.
        event: The refused event's type name.
    """

    def __init__(self, session_id: str, state: str, event: str) -> None:
        super().__init__(f"session {session_id}: event {event} is not accepted in state {state}")
        self.session_id = session_id
        self.state = state
        self.event = event

    def __repr__(self) -> str:
        return (
            f"InvalidTransition(session_id={self.session_id!r}, state={self.state!r}, "
            f"event={self.event!r})"
        )


class MappingFileError(MmthreadsError):
    """The mapping file cannot be read or written."""


class MappingCorruptError(MappingFileError):
    """The mapping file is not JSON, or not an object with a ``mappings`` list."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: unreadable mapping file: {reason}")
        self.path = path
        self.reason = reason

    def __repr__(self) -> str:
        return f"MappingCorruptError(path={self.path!r}, reason={self.reason!r})"


class MappingConflictError(MappingFileError):
    """A mapping change would move a session's thread or give one thread to two sessions."""

    def __init__(self, session_id: str, message: str) -> None:
        super().__init__(f"session {session_id}: {message}")
        self.session_id = session_id

    def __repr__(self) -> str:
        return f"MappingConflictError(session_id={self.session_id!r}, message={str(self)!r})"


class MappingVersionError(MappingFileError):
    """The mapping file has a version this mmthreads does not understand."""

    def __init__(self, path: str, version: object) -> None:
        super().__init__(
            f"{path}: mapping file version {version!r} is newer than this mmthreads understands "
            "(it reads version 1); upgrade mmthreads or point it at another file. "
            "The file was left untouched."
        )
        self.path = path
        self.version = version

    def __repr__(self) -> str:
        return f"MappingVersionError(path={self.path!r}, version={self.version!r})"


class ChatError(MmthreadsError):
    """A Mattermost request or connection failed."""


class AgentError(MmthreadsError):
    """An OpenCode request or connection failed."""
