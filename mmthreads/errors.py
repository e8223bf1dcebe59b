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
    │   ├── ChatRequestError     the server refused a request, or answered what we cannot read
    │   │   ├── ChatAuthError    401/403: the token is invalid or lacks a permission
    │   │   └── ChatNotFound     404: no such user, channel, post or file
    │   ├── ChatFileTooLarge     a file is bigger than the caller is willing to download
    │   ├── ChatUnavailable      5xx or network failures outlasted the retries
    │   │   └── ChatRateLimited  still rate limited (429) after the retries
    │   ├── ChatHandshakeError   the WebSocket upgrade failed (refused, cut or too slow)
    │   └── ChatDisconnected     an open WebSocket was lost (close code and reason)
    ├── AgentError               talking to OpenCode failed
    │   ├── AgentCallFailed      a call got no usable answer (status, name, message, retryable)
    │   │   ├── AgentUnavailable unreachable, or 5xx, after the retries
    │   │   │   └── AgentTimeout the server did not answer in time
    │   │   ├── AgentAuthError   401: missing or wrong password
    │   │   ├── AgentNotFound    404: no such session, request or route
    │   │   └── AgentBadResponse not the JSON the route promises (HTML for unknown routes)
    │   └── AgentWireError       an event from the server could not be decoded; skipped
    └── StreamerGaveUp           a supervised task kept failing; no more restarts

This module imports nothing else from mmthreads.
"""

from __future__ import annotations

__all__ = [
    "AgentAuthError",
    "AgentBadResponse",
    "AgentCallFailed",
    "AgentError",
    "AgentNotFound",
    "AgentTimeout",
    "AgentUnavailable",
    "AgentWireError",
    "ChatAuthError",
    "ChatDisconnected",
    "ChatError",
    "ChatFileTooLarge",
    "ChatHandshakeError",
    "ChatNotFound",
    "ChatRateLimited",
    "ChatRequestError",
    "ChatUnavailable",
    "ConfigError",
    "InvalidTransition",
    "MappingConflictError",
    "MappingCorruptError",
    "MappingFileError",
    "MappingVersionError",
    "MmthreadsError",
    "StreamerGaveUp",
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


class ChatRequestError(ChatError):
    """The server refused a request (4xx), or answered something that cannot be read.

    Attributes:
        status: The HTTP status; 0 when the answer itself could not be used (a success
            status with a body that is not the JSON expected, or a body httpx cannot decode).
        error_id: The ``AppError`` id, e.g. ``api.post.create_post.root_id.app_error`` ("" if
            the body was not an ``AppError``).
        message: The server's English message, or a short description of the problem.
        endpoint: Method and path of the request, e.g. ``POST /posts`` (never the token).
    """

    def __init__(self, status: int, error_id: str, message: str, *, endpoint: str = "") -> None:
        where = f"{endpoint}: " if endpoint else ""
        ident = f" {error_id}" if error_id else ""
        super().__init__(f"{where}HTTP {status}{ident}: {message}")
        self.status = status
        self.error_id = error_id
        self.message = message
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_id={self.error_id!r}, "
            f"message={self.message!r}, endpoint={self.endpoint!r})"
        )


class ChatAuthError(ChatRequestError):
    """401 or 403: the token is invalid or expired, or lacks a permission."""


class ChatNotFound(ChatRequestError):
    """404: the user, channel, post or file does not exist (or is not visible to the bot)."""


class ChatFileTooLarge(ChatError):
    """A file is larger than the download limit the caller gave.

    Attributes:
        file_id: The Mattermost file id.
        limit: The limit in bytes.
    """

    def __init__(self, file_id: str, limit: int) -> None:
        super().__init__(f"file {file_id} is larger than {limit} bytes")
        self.file_id = file_id
        self.limit = limit

    def __repr__(self) -> str:
        return f"ChatFileTooLarge(file_id={self.file_id!r}, limit={self.limit!r})"


class ChatUnavailable(ChatError):
    """Mattermost could not be reached, or kept failing (5xx), through every retry.

    Attributes:
        reason: What the last attempt ran into.
        maybe_done: The request may have reached the server and been carried out (a create
            whose answer was lost); False when it certainly was not.
    """

    def __init__(self, reason: str, *, maybe_done: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_done = maybe_done

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r})"


class ChatRateLimited(ChatUnavailable):
    """The server still answered 429 after the retries, or asked for too long a wait.

    Attributes:
        retry_after: Seconds the server last asked to wait.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited: retry after {retry_after:g} s")
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ChatRateLimited(retry_after={self.retry_after!r})"


class ChatHandshakeError(ChatError):
    """The WebSocket upgrade failed: refused, cut before ``hello``, or too slow.

    Attributes:
        reason: What went wrong, e.g. ``"upgrade refused with HTTP 503"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"ChatHandshakeError(reason={self.reason!r})"


class ChatDisconnected(ChatError):
    """An open WebSocket was lost.

    The reconnecting client reports this as the ``ChatDisconnected`` core event of
    ``mmthreads.core.chat_events``; the exception is what one connection raises.

    Attributes:
        code: The WebSocket close code (1006: no close frame; 4000: ping unanswered;
            4001: sequence gap, as Mattermost's own client uses them).
        reason: A short description.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed ({code}): {reason}")
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"ChatDisconnected(code={self.code!r}, reason={self.reason!r})"


class AgentError(MmthreadsError):
    """An OpenCode request or connection failed."""


class AgentCallFailed(AgentError):
    """A call to OpenCode got no usable answer.

    Attributes:
        status: The HTTP status, or 0 when no answer came at all.
        name: OpenCode's error name (``NotFoundError``, ``UnknownError``, an Effect ``_tag``)
            or a short description of what went wrong (``ConnectError``, ``NotJSON``).
        message: What OpenCode or the transport said; never contains credentials.
        retryable: Whether trying the same call again later may succeed.
    """

    def __init__(self, status: int, name: str, message: str, retryable: bool) -> None:
        where = f"HTTP {status}" if status else "no answer"
        super().__init__(f"OpenCode call failed ({where}, {name}): {message}")
        self.status = status
        self.name = name
        self.message = message
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, name={self.name!r}, "
            f"message={self.message!r}, retryable={self.retryable!r})"
        )


class AgentUnavailable(AgentCallFailed):
    """OpenCode could not be reached, or kept answering 5xx, until the retries ran out."""


class AgentTimeout(AgentUnavailable):
    """OpenCode did not answer within the configured time."""


class AgentAuthError(AgentCallFailed):
    """OpenCode refused the credentials (401): the password is missing or wrong."""


class AgentNotFound(AgentCallFailed):
    """OpenCode does not know the session, request or route (404)."""


class AgentBadResponse(AgentCallFailed):
    """OpenCode answered, but not with the JSON the route promises (unknown routes serve HTML)."""


class AgentWireError(AgentError):
    """An event frame from OpenCode could not be decoded; the stream logs and skips it.

    Attributes:
        reason: What was wrong with the frame.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"undecodable OpenCode event: {reason}")
        self.reason = reason

    def __repr__(self) -> str:
        return f"AgentWireError(reason={self.reason!r})"


class StreamerGaveUp(MmthreadsError):
    """A supervised task kept failing, and its supervisor stopped restarting it.

    Raised ``from`` the task's last failure, so the traceback shows why.

    Attributes:
        name: The supervised task's name, as given to the supervisor (e.g. the session id).
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: gave up restarting after repeated failures")
        self.name = name

    def __repr__(self) -> str:
        return f"StreamerGaveUp(name={self.name!r})"
