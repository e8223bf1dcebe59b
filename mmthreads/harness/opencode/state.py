"""The stand-in's state: instances, sessions, messages and parts, statuses, todos.

Plain synchronous code, no I/O and no clock of its own (``clock_ms`` is injected).  Every change
publishes the event the real server publishes for it, in the same shape, through the
``EventBus``; the agent loop (``agent.py``) only sequences these calls and sleeps between them.
Messages and parts are in ``messages.py`` (a mixin of ``OpenCodeState``); pending permissions
and questions in ``pending.py``.

The ``dialect`` decides the event shapes (reference §5):

- ``current`` (1.18.33): events carry ``id``; session and message events are
  ``{sessionID, info}``; text streams as ``message.part.delta``; ``message.part.updated`` is
  ``{sessionID, part, time}``.
- ``legacy`` (about 1.0.150): no event ``id``; ``{info}``; ``message.part.updated`` is
  ``{part, delta?}`` and carries the deltas itself.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any, Final, Literal

from mmthreads.harness.opencode.bus import EventBus
from mmthreads.harness.opencode.ids import IdSource
from mmthreads.harness.opencode.messages import MessageOps
from mmthreads.harness.opencode.records import (
    Instance,
    MessageRecord,
    data_url_size,
    iso,
    zero_tokens,
)
from mmthreads.harness.opencode.wire import (
    NamedError,
    PermissionRule,
    Project,
    ProjectTime,
    Session,
    SessionTime,
    Todo,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CURRENT_VERSION",
    "LEGACY_VERSION",
    "Dialect",
    "Instance",
    "MessageRecord",
    "OpenCodeState",
    "SessionNotFound",
    "data_url_size",
    "iso",
    "zero_tokens",
]

logger = logging.getLogger(__name__)

Dialect = Literal["current", "legacy"]

CURRENT_VERSION: Final = "1.18.33"
LEGACY_VERSION: Final = "1.0.150"


class SessionNotFound(LookupError):
    """No session has this id."""


class OpenCodeState(MessageOps):
    """Sessions, messages and everything else the stand-in remembers.

    Args:
        clock_ms: Returns the current time in epoch milliseconds.
        default_directory: The server's own working directory.
        dialect: Which server generation's event shapes to produce.
        version: The version the server reports; by default 1.18.33 (current) or 1.0.150.
        seed: Seed for ids and slugs.
    """

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int],
        default_directory: str,
        dialect: Dialect = "current",
        version: str | None = None,
        seed: int = 0,
    ) -> None:
        self.clock_ms = clock_ms
        self.default_directory = default_directory
        self.dialect: Dialect = dialect
        self.version = version or (CURRENT_VERSION if dialect == "current" else LEGACY_VERSION)
        self.ids = IdSource(clock_ms, seed=seed)
        self.bus = EventBus(self._event_id)
        self.instances: dict[str, Instance] = {}
        self.sessions: dict[str, Session] = {}
        self.messages: dict[str, list[MessageRecord]] = {}
        #: Non-idle statuses by session id (``{type:"busy"}``, ``{type:"retry", …}``).
        self.status: dict[str, dict[str, Any]] = {}
        self.todos: dict[str, list[Todo]] = {}

    def __repr__(self) -> str:
        return (
            f"<OpenCodeState dialect={self.dialect} sessions={len(self.sessions)} "
            f"busy={len(self.status)} events={len(self.bus.log)}>"
        )

    @property
    def current(self) -> bool:
        """Whether the server speaks the 1.18.33 dialect."""
        return self.dialect == "current"

    def _event_id(self) -> str | None:
        return self.ids.ascending("evt") if self.current else None

    # -- instances -----------------------------------------------------------------------------

    def instance(self, directory: str | None = None) -> Instance:
        """The instance for ``directory`` (the default one if ``None``), created on first use.

        Its project id is a hash of the directory, like the id of a git repository with commits,
        so each directory is its own project.  Creating an instance publishes
        ``project.updated`` (seen only on ``/global/event``, as ``directory:"global"``).
        """
        directory = directory or self.default_directory
        found = self.instances.get(directory)
        if found is not None:
            return found
        now = self.clock_ms()
        project_id = hashlib.sha1(directory.encode(), usedforsecurity=False).hexdigest()
        project = Project(
            id=project_id,
            worktree=directory,
            vcs="git",
            time=ProjectTime(created=now, updated=now),
            sandboxes=[],
        )
        snapshot = hashlib.sha1(b"tree:" + directory.encode(), usedforsecurity=False).hexdigest()
        found = Instance(directory=directory, project=project, snapshot=snapshot)
        self.instances[directory] = found
        self.bus.publish("global", "project.updated", project, project=project_id)
        return found

    def publish(self, session: Session, type_: str, properties: object) -> None:
        """Publish an event of ``session``'s instance."""
        self.bus.publish(session.directory, type_, properties, project=session.project_id)

    # -- sessions ------------------------------------------------------------------------------

    def session(self, session_id: str) -> Session:
        """The session with this id, from any instance.

        Raises:
            SessionNotFound: There is none.
        """
        found = self.sessions.get(session_id)
        if found is None:
            raise SessionNotFound(session_id)
        return found

    def create_session(
        self,
        directory: str | None = None,
        *,
        title: str | None = None,
        parent_id: str | None = None,
        permission: list[PermissionRule] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Session:
        """Create a session and publish ``session.created``."""
        instance = self.instance(directory)
        now = self.clock_ms()
        if title is None:
            title = f"{'Child' if parent_id else 'New'} session - {iso(now)}"
        session = Session(
            id=self.ids.descending("ses"),
            slug=self.ids.slug(),
            version=self.version,
            project_id=instance.project.id,
            directory=instance.directory,
            path="",
            parent_id=parent_id,
            title=title,
            cost=0,
            tokens=zero_tokens(),
            time=SessionTime(created=now, updated=now),
            metadata=metadata,
            permission=permission,
        )
        self.sessions[session.id] = session
        self.messages[session.id] = []
        self._session_event("session.created", session)
        return session

    def touch(self, session: Session) -> None:
        """Bump ``time.updated`` and publish ``session.updated``."""
        session.time.updated = max(self.clock_ms(), session.time.updated)
        self._session_event("session.updated", session)

    def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        archived: float | None = None,
        metadata: dict[str, Any] | None = None,
        permission: list[PermissionRule] | None = None,
    ) -> Session:
        """Change a session (``PATCH``); publishes ``session.updated``."""
        session = self.session(session_id)
        if title is not None:
            session.title = title
        if archived is not None:
            session.time.archived = archived
        if metadata is not None:
            session.metadata = metadata
        if permission is not None:
            session.permission = permission
        self.touch(session)
        return session

    def delete_session(self, session_id: str) -> None:
        """Delete a session and its children; publishes ``session.deleted`` for each."""
        session = self.session(session_id)
        for child in self.children(session_id):
            self.delete_session(child.id)
        del self.sessions[session_id]
        self.messages.pop(session_id, None)
        self.todos.pop(session_id, None)
        self.status.pop(session_id, None)
        self._session_event("session.deleted", session)

    def children(self, session_id: str) -> list[Session]:
        """The sessions whose parent is ``session_id``."""
        return [s for s in self.sessions.values() if s.parent_id == session_id]

    def list_sessions(
        self,
        directory: str,
        *,
        roots: bool = False,
        search: str | None = None,
        start: float | None = None,
        limit: int | None = None,
    ) -> list[Session]:
        """The instance's sessions, most recently updated first (``GET /session``)."""
        found = [s for s in self.sessions.values() if s.directory == directory]
        if roots:
            found = [s for s in found if s.parent_id is None]
        if search:
            found = [s for s in found if search.lower() in s.title.lower()]
        if start is not None:
            found = [s for s in found if s.time.updated >= start]
        found.sort(key=lambda s: s.time.updated, reverse=True)
        return found[:limit] if limit is not None else found

    def set_title(self, session: Session, title: str) -> None:
        """Set a generated title; publishes ``session.updated``."""
        session.title = title
        self._session_event("session.updated", session)

    # -- statuses, errors, todos ---------------------------------------------------------------

    def set_status(self, session: Session, status: dict[str, Any] | None) -> None:
        """Publish ``session.status``; ``None`` means idle (also publishes ``session.idle``)."""
        if status is None:
            self.status.pop(session.id, None)
            self.publish(
                session, "session.status", {"sessionID": session.id, "status": {"type": "idle"}}
            )
            self.publish(session, "session.idle", {"sessionID": session.id})
        else:
            self.status[session.id] = status
            self.publish(session, "session.status", {"sessionID": session.id, "status": status})

    def session_error(self, session: Session, error: NamedError) -> None:
        """Publish ``session.error``."""
        self.publish(session, "session.error", {"sessionID": session.id, "error": error})

    def statuses(self, directory: str) -> dict[str, dict[str, Any]]:
        """``GET /session/status``: the non-idle sessions of an instance."""
        return {
            sid: status
            for sid, status in self.status.items()
            if sid in self.sessions and self.sessions[sid].directory == directory
        }

    def set_todos(self, session: Session, todos: list[Todo]) -> None:
        """Replace a session's todo list; publishes ``todo.updated``."""
        self.todos[session.id] = todos
        self.publish(session, "todo.updated", {"sessionID": session.id, "todos": todos})

    # -- helpers -------------------------------------------------------------------------------

    def _with_session(self, session: Session, **fields: object) -> dict[str, object]:
        if self.current:
            return {"sessionID": session.id, **fields}
        return dict(fields)

    def _session_event(self, type_: str, session: Session) -> None:
        self.publish(session, type_, self._with_session(session, info=session))
