"""The OpenCode REST client: typed calls in the bridge's vocabulary, errors mapped at the edge.

Theory of operation
-------------------
One :class:`OpenCodeClient` owns one ``httpx.AsyncClient`` (its transport is injectable, so
tests hand it an ``httpx.MockTransport``) for one OpenCode server, which may host many project
instances: every instance call names its ``directory`` as a query parameter
(``reference/opencode-server-api.md`` §2.11).  Every call goes through one loop
(``mmthreads.adapters.opencode_http``) that decides, per answer:

- 2xx: the content type must be ``application/json`` (OpenCode answers unknown routes with its
  web UI, 200 ``text/html``, even for POST), then the body decodes into a wire Struct and is
  normalised into ``mmthreads.core.agent_events`` types.  Anything else is
  :class:`~mmthreads.errors.AgentBadResponse`.
- 429, 502, 503, 504 (the server did not act) and connection failures: retried with the
  :class:`~mmthreads.core.backoff.RetryPolicy` (or after ``Retry-After``), then
  :class:`~mmthreads.errors.AgentUnavailable`.  A 500 and a failure after the request was
  sent are retried only for calls that are safe to repeat (reads, abort): a prompt must not
  be sent twice.
- 401, 404 and other errors: :class:`~mmthreads.errors.AgentAuthError`,
  :class:`~mmthreads.errors.AgentNotFound` or :class:`~mmthreads.errors.AgentCallFailed`
  with OpenCode's error name (NamedError ``name`` or Effect ``_tag``) and message.
- 500 ``UnknownError`` saying "Unable to connect…" or "Was there a typo in the url…": a
  1.0-era server proxied a route it lacks to the web app, which it cannot reach offline.
  That is a missing route: :class:`~mmthreads.errors.AgentNotFound`, not retried.

No httpx exception leaves the adapter.  The password travels only in the ``Authorization``
header: it is not in the client's repr, a log line or an error message, and credentials in
the base URL are moved out of it.  The SSE consumer is ``mmthreads.adapters.opencode_events``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import msgspec

from mmthreads.adapters.opencode_http import DEFAULT_OPENCODE_POLICY, EventStream, HttpCaller
from mmthreads.errors import AgentBadResponse, AgentNotFound
from mmthreads.wire.opencode_normalise import (
    HistoryMessage,
    ProviderCatalog,
    decode_part,
    to_message_updated,
    to_permission_asked,
    to_provider_catalog,
    to_question_asked,
    to_session_info,
    to_session_status,
    to_todos,
)
from mmthreads.wire.opencode_resources import (
    MessageWithParts,
    PermissionRequest,
    QuestionRequest,
    Session,
    StatusInfo,
    Todo,
)
from mmthreads.wire.opencode_rest import (
    CreateSessionBody,
    Health,
    LegacyPermissionReplyBody,
    PartInput,
    PermissionReplyBody,
    PromptBody,
    PromptModel,
    ProviderList,
    QuestionReplyBody,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from types import TracebackType

    import httpx

    from mmthreads.core import agent_events as ae
    from mmthreads.core.backoff import RetryPolicy

__all__ = [
    "DEFAULT_OPENCODE_POLICY",
    "HEALTH_TIMEOUT",
    "OpenCodeClient",
    "open_opencode_client",
]

logger = logging.getLogger(__name__)

#: Seconds the health probe waits for its answer (a running server answers at once).
HEALTH_TIMEOUT: Final = 5.0

_health: Final = msgspec.json.Decoder(Health)
_session: Final = msgspec.json.Decoder(Session)
_sessions: Final = msgspec.json.Decoder(list[Session])
_statuses: Final = msgspec.json.Decoder(dict[str, StatusInfo])
_history: Final = msgspec.json.Decoder(list[MessageWithParts])
_permissions: Final = msgspec.json.Decoder(list[PermissionRequest])
_questions: Final = msgspec.json.Decoder(list[QuestionRequest])
_todos: Final = msgspec.json.Decoder(list[Todo])
_providers: Final = msgspec.json.Decoder(ProviderList)
_flag: Final = msgspec.json.Decoder(bool)


def _seg(value: str) -> str:
    """One path segment, escaped."""
    return quote(value, safe="")


class OpenCodeClient:
    """Typed calls to one OpenCode server.

    Args:
        base_url: ``http://127.0.0.1:4096``; credentials in it are moved to the auth header.
        username: Basic-auth user (OpenCode's default is ``opencode``).
        password: Basic-auth password (``OPENCODE_SERVER_PASSWORD``); ``None`` sends no auth.
        transport: An httpx transport to use instead of the network (tests).
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for an answer (not applied to the event streams).
        policy: Retries for failures the server did not act on.

    Raises:
        ConfigError: ``base_url`` is not an ``http(s)://host[:port]`` URL.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str = "opencode",
        password: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        policy: RetryPolicy = DEFAULT_OPENCODE_POLICY,
    ) -> None:
        self._http = HttpCaller(
            base_url,
            username=username,
            password=password,
            transport=transport,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            policy=policy,
        )

    def __repr__(self) -> str:
        return f"<OpenCodeClient {self._http!r}>"

    @property
    def server(self) -> str:
        """The server's base URL, without credentials: the ``server`` of every event."""
        return self._http.server

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> OpenCodeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- server ----------------------------------------------------------------------------

    async def health(self) -> tuple[bool, str]:
        """``GET /global/health``: whether the server is healthy, and its version.

        Answered at once by a running server, so it waits at most :data:`HEALTH_TIMEOUT`
        seconds: a server still booting may take the connection and not answer, and the
        probe is better repeated than waited out.
        """
        health = await self._http.call_json(
            "GET", "/global/health", _health, idempotent=True, read_timeout=HEALTH_TIMEOUT
        )
        return health.healthy, health.version

    # --- sessions --------------------------------------------------------------------------

    async def list_sessions(self, directory: str) -> list[ae.SessionInfo]:
        """The sessions of one project, most recently updated first."""
        sessions = await self._http.call_json(
            "GET", "/session", _sessions, directory=directory, idempotent=True
        )
        return [to_session_info(session) for session in sessions]

    async def get_session(self, session_id: str, directory: str) -> ae.SessionInfo:
        """One session.

        Raises:
            AgentNotFound: The server does not know the session (deleted).
        """
        path = f"/session/{_seg(session_id)}"
        session = await self._http.call_json(
            "GET", path, _session, directory=directory, idempotent=True
        )
        return to_session_info(session)

    async def create_session(self, directory: str, title: str | None = None) -> ae.SessionInfo:
        """Start a session in ``directory`` (``session.created`` follows on the stream)."""
        body = CreateSessionBody(title=title)
        session = await self._http.call_json(
            "POST", "/session", _session, directory=directory, body=body
        )
        return to_session_info(session)

    async def delete_session(self, session_id: str, directory: str) -> None:
        """Delete a session (for tests and tools; the bridge never deletes one)."""
        path = f"/session/{_seg(session_id)}"
        await self._http.call_json("DELETE", path, _flag, directory=directory)

    async def session_status(self, directory: str) -> dict[str, ae.SessionStatus]:
        """Busy and retrying sessions of one project; idle sessions are not listed."""
        statuses = await self._http.call_json(
            "GET", "/session/status", _statuses, directory=directory, idempotent=True
        )
        server = self.server
        result: dict[str, ae.SessionStatus] = {}
        for session_id, info in statuses.items():
            status = to_session_status(session_id, info, server=server, directory=directory)
            if status is not None:
                result[session_id] = status
        return result

    async def messages(
        self, session_id: str, directory: str, limit: int | None = None
    ) -> list[HistoryMessage]:
        """A session's history, oldest first (with ``limit``: the newest ``limit`` messages).

        The parts are full snapshots, so an answer the chat saw only in part can be completed
        from them after a reconnect.
        """
        params = {} if limit is None else {"limit": str(limit)}
        path = f"/session/{_seg(session_id)}/message"
        entries = await self._http.call_json(
            "GET", path, _history, directory=directory, params=params, idempotent=True
        )
        server = self.server
        history: list[HistoryMessage] = []
        for entry in entries:
            info = to_message_updated(entry.info, server=server, directory=directory)
            if info is None:
                continue
            try:
                parts = tuple(decode_part(raw)[1] for raw in entry.parts)
            except msgspec.DecodeError as exc:
                raise AgentBadResponse(200, "InvalidBody", f"{path}: {exc}", False) from None
            history.append(HistoryMessage(info=info, parts=parts))
        return history

    async def todos(self, session_id: str, directory: str) -> tuple[ae.Todo, ...]:
        """A session's todo list."""
        path = f"/session/{_seg(session_id)}/todo"
        todos = await self._http.call_json(
            "GET", path, _todos, directory=directory, idempotent=True
        )
        return to_todos(todos)

    async def prompt_async(
        self,
        session_id: str,
        directory: str,
        parts: Sequence[PartInput],
        model: tuple[str, str] | None,
        agent: str | None = None,
    ) -> None:
        """Send a prompt; the answer arrives on the event stream (204 at once).

        Args:
            session_id: The session.
            directory: The session's directory.
            parts: Text and files (``TextPartInput``, ``FilePartInput`` with a data URI).
            model: ``(providerID, modelID)``; send it explicitly, the server's choice sticks.
            agent: The agent to run (``build``, ``plan``), or the session's.

        Raises:
            AgentCallFailed: e.g. 500 ``UnknownError`` for an unknown session.
        """
        body = PromptBody(
            parts=list(parts),
            model=None if model is None else PromptModel(provider_id=model[0], model_id=model[1]),
            agent=agent,
        )
        path = f"/session/{_seg(session_id)}/prompt_async"
        await self._http.call_empty("POST", path, directory=directory, body=body)

    async def abort(self, session_id: str, directory: str) -> bool:
        """Abort the session's run and drop its queued prompts (``true`` even when idle)."""
        path = f"/session/{_seg(session_id)}/abort"
        return await self._http.call_json("POST", path, _flag, directory=directory, idempotent=True)

    # --- permissions and questions ---------------------------------------------------------

    async def list_permissions(self, directory: str) -> list[ae.PermissionAsked]:
        """Pending permissions of one project (``AgentBadResponse`` on servers before it)."""
        requests = await self._http.call_json(
            "GET", "/permission", _permissions, directory=directory, idempotent=True
        )
        server = self.server
        return [to_permission_asked(r, server=server, directory=directory) for r in requests]

    async def reply_permission(
        self,
        request_id: str,
        session_id: str,
        directory: str,
        reply: str,
        message: str | None = None,
    ) -> bool:
        """Answer a permission: ``once``, ``always`` or ``reject``.

        Uses ``POST /permission/{id}/reply``; a server that answers it with 404 or HTML
        (before about 1.0.2xx) gets the legacy ``POST /session/{sid}/permissions/{pid}``,
        which takes no ``message``.

        Returns:
            Whether ``message`` reached OpenCode (False: the legacy route dropped it; True
            when there was none).

        Raises:
            AgentNotFound: No such pending request on either route.
        """
        path = f"/permission/{_seg(request_id)}/reply"
        body = PermissionReplyBody(reply=reply, message=message)
        try:
            await self._http.call_json("POST", path, _flag, directory=directory, body=body)
        except (AgentNotFound, AgentBadResponse) as exc:
            logger.info("%s: %s; trying the legacy permission route", path, exc.name)
        else:
            return True
        legacy = f"/session/{_seg(session_id)}/permissions/{_seg(request_id)}"
        await self._http.call_json(
            "POST",
            legacy,
            _flag,
            directory=directory,
            body=LegacyPermissionReplyBody(response=reply),
        )
        return not message

    async def list_questions(self, directory: str) -> list[ae.QuestionAsked]:
        """Pending questions of one project (``AgentBadResponse`` on servers before them)."""
        requests = await self._http.call_json(
            "GET", "/question", _questions, directory=directory, idempotent=True
        )
        server = self.server
        return [to_question_asked(r, server=server, directory=directory) for r in requests]

    async def reply_question(
        self, request_id: str, directory: str, answers: Sequence[Sequence[str]]
    ) -> None:
        """Answer a question: one list of chosen labels (or typed text) per question."""
        path = f"/question/{_seg(request_id)}/reply"
        body = QuestionReplyBody(answers=[list(answer) for answer in answers])
        await self._http.call_json("POST", path, _flag, directory=directory, body=body)

    async def reject_question(self, request_id: str, directory: str) -> None:
        """Decline a question (the tool call fails and the run stops)."""
        path = f"/question/{_seg(request_id)}/reject"
        await self._http.call_json("POST", path, _flag, directory=directory)

    # --- models ----------------------------------------------------------------------------

    async def providers(self, directory: str) -> ProviderCatalog:
        """The connected providers, their models and capabilities, and the defaults."""
        listing = await self._http.call_json(
            "GET", "/provider", _providers, directory=directory, idempotent=True
        )
        return to_provider_catalog(listing)

    # --- event streams ---------------------------------------------------------------------

    @asynccontextmanager
    async def open_global_events(self) -> AsyncIterator[EventStream]:
        """Subscribe to ``GET /global/event`` (every instance's events, wrapped).

        Raises:
            AgentNotFound: The server has no such route (404).
            AgentBadResponse: The server answered HTML (no such route) or not an SSE stream.
            AgentCallFailed: Any other failure to open it.
        """
        async with self._http.open_stream("/global/event", directory=None) as stream:
            yield stream

    @asynccontextmanager
    async def open_events(self, directory: str) -> AsyncIterator[EventStream]:
        """Subscribe to ``GET /event`` of one instance (``""``: the server's own directory).

        Raises:
            AgentCallFailed: The stream could not be opened (see ``open_global_events``).
        """
        async with self._http.open_stream("/event", directory=directory) as stream:
            yield stream


@asynccontextmanager
async def open_opencode_client(
    base_url: str,
    *,
    username: str = "opencode",
    password: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    policy: RetryPolicy = DEFAULT_OPENCODE_POLICY,
) -> AsyncIterator[OpenCodeClient]:
    """An :class:`OpenCodeClient` for the duration of the block (closed on the way out).

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:4096``.
        username: Basic-auth user.
        password: Basic-auth password, or ``None`` for none.
        transport: An httpx transport to use instead of the network (tests).
        policy: Retries for failures the server did not act on.
    """
    client = OpenCodeClient(
        base_url, username=username, password=password, transport=transport, policy=policy
    )
    try:
        yield client
    finally:
        await client.aclose()
