"""``OpenCodeStandIn``: the fake ``opencode serve`` without its HTTP front.

It holds the state, the pending prompts, the agent and the fault plan, and offers what a client
and a test need: actions (create a session, prompt, abort, answer a permission …), observation
(the event log, the request log, ``wait_*`` methods that wake on state changes; inherited from
``observing.py``) and controls (``cut_streams``, ``kill``).  Fast tests drive it directly::

    standin = OpenCodeStandIn(directory="/tmp/proj")
    async with trio.open_nursery() as nursery:
        await nursery.start(standin.run)
        session = standin.create_session()
        standin.prompt_nowait(session.id, "USE_TOOLS")
        request = await standin.wait_permission_asked(session.id)
        standin.reply_permission(request.id, "once")
        await standin.wait_idle(session.id)
        nursery.cancel_scope.cancel()

``server.py`` puts the ASGI app (``app.py``) in front of it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Literal

import msgspec
import trio

from mmthreads.harness import script
from mmthreads.harness.faults import FaultPlan
from mmthreads.harness.opencode.agent import Agent, AgentSettings, TurnJob
from mmthreads.harness.opencode.bodies import FilePartInput, TextPartInput
from mmthreads.harness.opencode.catalog import DEFAULT_MODEL, DEFAULT_PROVIDER, find_model
from mmthreads.harness.opencode.observing import Observing, RecordedRequest
from mmthreads.harness.opencode.pending import PendingPrompts
from mmthreads.harness.opencode.signal import ChangeSignal
from mmthreads.harness.opencode.state import OpenCodeState, data_url_size
from mmthreads.harness.opencode.stream import EventStream
from mmthreads.harness.opencode.wire import NamedError, PermissionRule, UserModel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from mmthreads.harness.opencode.bodies import PartInput
    from mmthreads.harness.opencode.state import Dialect, MessageRecord
    from mmthreads.harness.opencode.wire import Reply, Session

__all__ = ["OpenCodeStandIn", "RecordedRequest", "UnknownModel"]

logger = logging.getLogger(__name__)


class _EpochClock:
    """Epoch milliseconds that advance with Trio's clock (so a ``MockClock`` moves them too)."""

    def __init__(self) -> None:
        self._origin: tuple[float, float] | None = None

    def __call__(self) -> int:
        try:
            now = trio.current_time()
        except RuntimeError:  # outside trio.run
            return int(time.time() * 1000)
        if self._origin is None:
            self._origin = (time.time(), now)
        wall, start = self._origin
        return int((wall + now - start) * 1000)


class UnknownModel(Exception):
    """A prompt named a model the catalogue does not have."""


class OpenCodeStandIn(Observing):
    """State, agent and controls of the fake OpenCode server.

    Args:
        directory: The server's own working directory (the default instance).
        plan: Faults to inject; an empty plan by default.
        password: Require HTTP Basic auth with this password.
        username: The Basic auth user name.
        dialect: ``current`` (1.18.33 shapes) or ``legacy`` (about 1.0.150, reference §5).
        chunk_delay: Seconds between streamed text chunks (``script.CHUNK_DELAY`` by default).
        bash_permission: The server config's ``permission.bash``.
        heartbeat_interval: Seconds between SSE heartbeats; by default 10 s for ``current`` and
            none for ``legacy`` (the 1.0-era server sent none).
        settings: Other agent pacing (retry delays, title); ``chunk_delay`` overrides its own.
        version: The version ``/global/health`` reports.
        seed: Seed for ids and slugs.
        clock_ms: Epoch-millisecond clock for timestamps; the wall clock by default.
    """

    def __init__(
        self,
        *,
        directory: str,
        plan: FaultPlan | None = None,
        password: str | None = None,
        username: str = "opencode",
        dialect: Dialect = "current",
        chunk_delay: float | None = None,
        bash_permission: Literal["ask", "allow", "deny"] = "ask",
        heartbeat_interval: float | Literal["default"] | None = "default",
        settings: AgentSettings | None = None,
        version: str | None = None,
        seed: int = 0,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.plan = plan if plan is not None else FaultPlan()
        self.password = password
        self.username = username
        self.state = OpenCodeState(
            clock_ms=clock_ms or _EpochClock(),
            default_directory=directory,
            dialect=dialect,
            version=version,
            seed=seed,
        )
        config_rules = [
            PermissionRule(permission="*", pattern="*", action="allow"),
            PermissionRule(permission="bash", pattern="*", action=bash_permission),
        ]
        self.pending = PendingPrompts(self.state, config_rules)
        self.signal = ChangeSignal()
        self.state.bus.on_publish = lambda _event: self.signal.notify()
        settings = settings or AgentSettings()
        if chunk_delay is not None:
            settings = msgspec.structs.replace(
                settings, chunk_delay=chunk_delay, slow_chunk_delay=10 * chunk_delay
            )
        self.agent = Agent(self.state, self.pending, self.signal, settings)
        if heartbeat_interval == "default":
            heartbeat_interval = 10.0 if dialect == "current" else None
        self.heartbeat_interval: float | None = heartbeat_interval
        self.requests: list[RecordedRequest] = []
        self.streams: set[EventStream] = set()
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return (
            f"<OpenCodeStandIn {self.state.dialect} sessions={len(self.state.sessions)} "
            f"streams={len(self.streams)} events={len(self.events)}>"
        )

    @property
    def dialect(self) -> Dialect:
        """``current`` or ``legacy``."""
        return self.state.dialect

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the agent's turns until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    # -- actions -------------------------------------------------------------------------------

    def create_session(
        self,
        directory: str | None = None,
        *,
        title: str | None = None,
        parent_id: str | None = None,
        permission: list[PermissionRule] | None = None,
    ) -> Session:
        """Create a session, as ``POST /session`` does."""
        return self.state.create_session(
            directory, title=title, parent_id=parent_id, permission=permission
        )

    def prompt_nowait(
        self,
        session_id: str,
        parts: str | Sequence[PartInput],
        *,
        model: tuple[str, str] | None = None,
        agent: str | None = None,
        no_reply: bool = False,
        message_id: str | None = None,
    ) -> TurnJob | None:
        """Store a prompt and queue its turn, as ``POST /session/{id}/prompt_async`` does.

        Args:
            session_id: The session.
            parts: The prompt text, or its parts.
            model: ``(providerID, modelID)``; the session's model (sticky) by default.
            agent: The agent; ``build`` by default.
            no_reply: Only store the message.
            message_id: A client-chosen message id.

        Returns:
            The queued turn, or ``None`` if no turn runs (``no_reply``).

        Raises:
            SessionNotFound: No such session.
            UnknownModel: The model is not in the catalogue (``session.error`` was published).
        """
        session = self.state.session(session_id)
        if isinstance(parts, str):
            parts = [TextPartInput(text=parts)]
        if model is None:
            model = (
                (session.model.provider_id, session.model.id)
                if session.model
                else (DEFAULT_PROVIDER, DEFAULT_MODEL)
            )
        user_model = UserModel(provider_id=model[0], model_id=model[1])
        record = self.state.add_user_message(
            session, parts, model=user_model, agent=agent or "build", message_id=message_id
        )
        if find_model(*model) is None:
            message = f"Model not found: {model[0]}/{model[1]}"
            self.state.session_error(
                session, NamedError(name="UnknownError", data={"message": message})
            )
            self.state.set_status(session, None)
            raise UnknownModel(message)
        if no_reply:
            return None
        if self._nursery is None:
            raise RuntimeError("the stand-in is not running: start OpenCodeStandIn.run first")
        text = "\n".join(p.text for p in parts if isinstance(p, TextPartInput) and not p.synthetic)
        attachments = tuple(
            script.Attachment(p.filename or "file", p.mime, data_url_size(p.url))
            for p in parts
            if isinstance(p, FilePartInput)
        )
        job = TurnJob(record, text, attachments)
        self.agent.submit(self._nursery, session, job)
        return job

    async def prompt(
        self,
        session_id: str,
        parts: str | Sequence[PartInput],
        *,
        model: tuple[str, str] | None = None,
        agent: str | None = None,
    ) -> MessageRecord:
        """Prompt and wait for the turn, as ``POST /session/{id}/message`` does.

        Returns:
            The turn's last assistant message (with ``error`` if it failed or was aborted).
        """
        job = self.prompt_nowait(session_id, parts, model=model, agent=agent)
        if job is None:  # pragma: no cover - no_reply is not offered here
            raise RuntimeError("no turn")
        await job.done.wait()
        result = job.result or self._last_message(session_id)
        if result is None:  # pragma: no cover - a turn always leaves a message
            raise RuntimeError("the turn left no message")
        return result

    def abort(self, session_id: str) -> bool:
        """Abort the session's turn and drop its queued prompts.  Always ``True``, as served."""
        self.agent.abort(session_id)
        return True

    def delete_session(self, session_id: str) -> None:
        """Delete a session (aborting its turn first); publishes ``session.deleted``."""
        self.state.session(session_id)
        self.agent.abort(session_id)
        self.pending.clear_session(session_id)
        self.state.delete_session(session_id)

    def archive_session(self, session_id: str, when: float | None = None) -> Session:
        """Archive a session (``time.archived``); publishes ``session.updated``."""
        return self.state.update_session(
            session_id, archived=when if when is not None else self.state.clock_ms()
        )

    def reply_permission(self, request_id: str, reply: Reply, message: str | None = None) -> bool:
        """Answer a pending permission.  ``False`` if there is none with this id."""
        return self.pending.reply_permission(request_id, reply, message)

    def reply_question(self, request_id: str, answers: list[list[str]]) -> bool:
        """Answer a pending question.  ``False`` if there is none with this id."""
        return self.pending.reply_question(request_id, answers)

    def reject_question(self, request_id: str) -> bool:
        """Dismiss a pending question.  ``False`` if there is none with this id."""
        return self.pending.reject_question(request_id)

    def _last_message(self, session_id: str) -> MessageRecord | None:
        records = self.state.messages.get(session_id, [])
        return records[-1] if records else None

    # -- streams and controls ------------------------------------------------------------------

    async def stream_events(
        self, directory: str | None, send: Callable[[bytes], Awaitable[None]]
    ) -> None:
        """Serve one SSE subscription until it is cut; ``directory=None`` for the global one.

        Args:
            directory: The instance to follow, or ``None`` for ``/global/event``.
            send: Writes one frame to the client.
        """
        stream = EventStream(directory, heartbeat_interval=self.heartbeat_interval)
        self.state.bus.subscribe(stream)
        self.streams.add(stream)
        self.signal.notify()
        try:
            await stream.run(self.state.bus, self.plan, send)
        finally:
            self.state.bus.unsubscribe(stream)
            self.streams.discard(stream)
            self.signal.notify()

    def cut_streams(self) -> int:
        """End every open SSE stream cleanly.  Returns how many were open."""
        streams = list(self.streams)
        for stream in streams:
            stream.cut()
        return len(streams)

    def kill(self) -> None:
        """What a killed process loses: running turns (their messages stay unfinished),
        queued prompts, statuses, pending permissions and questions, "always" approvals, and
        every stream.  Sessions, messages and todos stay (they live in the database)."""
        self.agent.kill_all()
        self.pending.forget()
        self.state.status.clear()
        self.cut_streams()
        self.signal.notify()
        logger.info("stand-in killed: turns, statuses and pending prompts lost")
