"""Serving the stand-in over HTTP on 127.0.0.1, and the controls of a running server.

``serve_opencode_standin`` runs, in one nursery: the stand-in's agent (``OpenCodeStandIn.run``),
and the ASGI app under hypercorn's Trio worker behind the TCP relay on the public port
(``harness/relay.py``).  It reports an ``OpenCodeServer`` through ``task_status``.

``open_opencode_standin`` wraps all of that for tests and demos::

    async with open_opencode_standin(directory="/tmp/proj", chunk_delay=0.001) as oc:
        session = oc.create_session()
        client = httpx.AsyncClient(base_url=oc.url)
        ...
        await oc.restart()      # an OpenCode restart: connections cut, pending prompts lost
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Literal, cast

import trio
from hypercorn.config import Config

from mmthreads.harness.opencode.app import OpenCodeApp
from mmthreads.harness.opencode.bodies import FilePartInput, TextPartInput
from mmthreads.harness.opencode.standin import OpenCodeStandIn
from mmthreads.harness.relay import serve_behind_relay

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from hypercorn.typing import ASGIFramework

    from mmthreads.harness.faults import FaultPlan
    from mmthreads.harness.opencode.agent import TurnJob
    from mmthreads.harness.opencode.bodies import PartInput
    from mmthreads.harness.opencode.wire import Session
    from mmthreads.harness.relay import TcpRelay

__all__ = [
    "OpenCodeServer",
    "OpenCodeStandInHandle",
    "open_opencode_standin",
    "serve_opencode_standin",
]

logger = logging.getLogger(__name__)


class OpenCodeServer:
    """A running stand-in server and its controls.

    Attributes:
        standin: The stand-in it serves.
        url: ``http://127.0.0.1:PORT``.
    """

    def __init__(self, standin: OpenCodeStandIn, relay: TcpRelay) -> None:
        self.standin = standin
        self._relay = relay
        self.url = f"http://{relay.host}:{relay.port}"

    def __repr__(self) -> str:
        return f"<OpenCodeServer {self.url} {self._relay!r}>"

    @property
    def up(self) -> bool:
        """Whether the server accepts connections."""
        return self._relay.listening

    def cut_streams(self) -> int:
        """End every SSE stream cleanly (the connections stay).  Returns how many."""
        return self.standin.cut_streams()

    def stop(self) -> None:
        """Go down like a killed process: refuse connections, cut every connection, lose the
        running turns (their assistant messages stay without ``finish``), statuses, pending
        permissions and questions.  Sessions and history stay."""
        self._relay.close()
        self.standin.kill()
        logger.info("%r stopped", self)

    async def start(self) -> None:
        """Accept connections again, on the same port."""
        await self._relay.open()
        logger.info("%r started", self)

    async def restart(self, down_for: float = 0.2) -> None:
        """``stop``, stay down for ``down_for`` seconds (connections refused), ``start``."""
        self.stop()
        await trio.sleep(down_for)
        await self.start()


async def serve_opencode_standin(
    standin: OpenCodeStandIn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[OpenCodeServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``standin`` on ``host:port`` until cancelled.

    Args:
        standin: The stand-in to serve.
        host: The address to listen on; keep it on loopback.
        port: The port; 0 picks a free one.
        task_status: Receives the ``OpenCodeServer`` (its ``url`` and controls) once listening.
    """
    async with trio.open_nursery() as nursery:
        await nursery.start(standin.run)
        relay: TcpRelay | None = None

        def drop(client: tuple[str, int] | None) -> bool:
            return relay is not None and relay.abort(client)

        config = Config()
        config.accesslog = None
        config.graceful_timeout = 0.5
        config.keep_alive_timeout = 30
        # The app types ASGI messages as plain dicts; hypercorn's TypedDicts are the same shapes.
        app = cast("ASGIFramework", OpenCodeApp(standin, drop=drop))
        relay = await nursery.start(partial(serve_behind_relay, app, config, host=host, port=port))
        server = OpenCodeServer(standin, relay)
        logger.info("OpenCode stand-in (%s) listening on %s", standin.dialect, server.url)
        try:
            task_status.started(server)
            await trio.sleep_forever()
        finally:
            # End the streams, so that the apps serving them return once the relay has cut
            # their connections and hypercorn shuts down.
            standin.cut_streams()


class OpenCodeStandInHandle(OpenCodeServer):
    """A server opened by ``open_opencode_standin``, with helpers that act as a TUI user would.

    The helpers change the server's state directly, as another client of the same server
    would; they pass no fault point and are not in the request log.
    """

    def create_session(
        self,
        directory: str | None = None,
        title: str | None = None,
        parent_id: str | None = None,
    ) -> Session:
        """Start a session (``session.created`` follows on the streams)."""
        return self.standin.create_session(directory, title=title, parent_id=parent_id)

    def prompt(
        self,
        session_id: str,
        text: str,
        *,
        files: Sequence[tuple[str, str, str]] = (),
        model: tuple[str, str] | None = None,
    ) -> TurnJob:
        """Type a prompt into a session; the turn runs in the background.

        Args:
            session_id: The session.
            text: The prompt (script directives such as ``USE_TOOLS`` steer the turn).
            files: Attachments as ``(filename, mime, data URL)``.
            model: ``(providerID, modelID)``; the session's model by default.

        Returns:
            The turn; ``await job.done.wait()`` to wait for it.
        """
        parts: list[PartInput] = [TextPartInput(text=text)]
        parts += [FilePartInput(mime=m, url=u, filename=f) for f, m, u in files]
        job = self.standin.prompt_nowait(session_id, parts, model=model)
        assert job is not None
        return job

    def abort(self, session_id: str) -> None:
        """Press escape: abort the session's turn."""
        self.standin.abort(session_id)

    def delete_session(self, session_id: str) -> None:
        """Delete a session (``session.deleted``)."""
        self.standin.delete_session(session_id)

    def archive_session(self, session_id: str) -> Session:
        """Archive a session (``session.updated`` with ``time.archived``)."""
        return self.standin.archive_session(session_id)


@asynccontextmanager
async def open_opencode_standin(
    *,
    directory: str,
    plan: FaultPlan | None = None,
    password: str | None = None,
    dialect: Literal["current", "legacy"] = "current",
    chunk_delay: float | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[OpenCodeStandInHandle]:
    """Run a stand-in server for the duration of the block.

    Args:
        directory: The server's own working directory.
        plan: Faults to inject.
        password: Require Basic auth (user ``opencode``) with this password.
        dialect: ``current`` (1.18.33) or ``legacy`` (about 1.0.150).
        chunk_delay: Seconds between streamed text chunks.
        host: Listen address (loopback).
        port: Listen port; 0 picks a free one.

    Yields:
        The handle: ``url``, ``standin``, controls and TUI-like helpers.
    """
    standin = OpenCodeStandIn(
        directory=directory,
        plan=plan,
        password=password,
        dialect=dialect,
        chunk_delay=chunk_delay,
    )
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve_opencode_standin, standin, host=host, port=port))
        handle = OpenCodeStandInHandle(standin, server._relay)
        try:
            yield handle
        finally:
            standin.cut_streams()
            nursery.cancel_scope.cancel()
