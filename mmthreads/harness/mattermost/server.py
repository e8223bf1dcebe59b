"""Running the emulator: hypercorn's Trio worker behind a TCP relay (``harness/relay.py``).

``serve_mattermost_emulator`` runs until cancelled and reports a ``MattermostServer`` through
``task_status``; ``open_mattermost_emulator`` wraps it in an async context manager for tests,
drills and the demo.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, cast

import httpx
import trio
from hypercorn.config import Config

from mmthreads.harness.mattermost.app import MattermostApp
from mmthreads.harness.mattermost.emulator import MattermostEmulator
from mmthreads.harness.mattermost.human import Human
from mmthreads.harness.relay import serve_behind_relay

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from hypercorn.typing import ASGIFramework

    from mmthreads.harness.faults import FaultPlan
    from mmthreads.harness.mattermost.emulator import ConnectRecord
    from mmthreads.harness.mattermost.models import Account, Post
    from mmthreads.harness.mattermost.ratelimit import RateLimit
    from mmthreads.harness.relay import TcpRelay

__all__ = ["MattermostServer", "open_mattermost_emulator", "serve_mattermost_emulator"]

logger = logging.getLogger(__name__)


class MattermostServer:
    """A running emulator: its URL, its state and the controls of a drill.

    Attributes:
        emulator: The shared state and fault plan.
        url: ``http://127.0.0.1:PORT`` (the WebSocket is at ``ws://…/api/v4/websocket``).
    """

    def __init__(self, emulator: MattermostEmulator, relay: TcpRelay, stop: trio.Event) -> None:
        self.emulator = emulator
        self._relay = relay
        self._stop = stop
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"<MattermostServer {self.url} {self._relay!r}>"

    @property
    def port(self) -> int:
        """The public port (unchanged by restarts)."""
        return self._relay.port

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://{self._relay.host}:{self._relay.port}"

    @property
    def websocket_url(self) -> str:
        """The WebSocket URL."""
        return f"ws://{self._relay.host}:{self._relay.port}/api/v4/websocket"

    def create_user(self, username: str, *, bot: bool = False, token: str | None = None) -> Account:
        """Create a user or bot with an access token."""
        return self.emulator.create_user(username, bot=bot, token=token)

    def human(self, account: Account) -> Human:
        """A human actor for ``account``, talking to this server like the web app does."""
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.url)
        return Human(account, self.url, client=self._client)

    # -- drill controls -------------------------------------------------------------------

    def disconnect_all_websockets(self, code: int = 1006) -> int:
        """Close every live WebSocket (1006: no close frame); return how many."""
        return self.emulator.disconnect_all_websockets(code)

    def refuse_websockets_for(self, seconds: float) -> None:
        """Answer WebSocket upgrades with 503 for ``seconds``."""
        self.emulator.refuse_websockets_for(seconds)

    async def set_unreachable(self) -> None:
        """Stop listening and cut every connection (clients see "connection refused").

        Returns once every connection is closed.
        """
        self._relay.close()
        await self._relay.wait_idle()
        logger.info("emulator on port %d is unreachable", self.port)

    async def set_reachable(self) -> None:
        """Listen again, on the same port."""
        await self._relay.open()
        logger.info("emulator on port %d is reachable", self.port)

    async def restart(self, downtime: float = 0.0) -> None:
        """A Mattermost restart: connections cut, resume state lost, data kept, same port.

        Args:
            downtime: Seconds to stay unreachable in between.
        """
        await self.set_unreachable()
        self.emulator.forget_connections()
        if downtime > 0:
            await trio.sleep(downtime)
        await self.set_reachable()

    def stop(self) -> None:
        """Make ``serve_mattermost_emulator`` return."""
        self._stop.set()

    async def aclose(self) -> None:
        """Close the human actors' HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- observation shortcuts -------------------------------------------------------------

    def posts_in(self, channel_id: str) -> list[Post]:
        """See ``MattermostEmulator.posts_in``."""
        return self.emulator.posts_in(channel_id)

    def thread(self, root_id: str) -> list[Post]:
        """See ``MattermostEmulator.thread``."""
        return self.emulator.thread(root_id)

    async def wait_post(self, predicate: Callable[[Post], bool]) -> Post:
        """See ``MattermostEmulator.wait_post``."""
        return await self.emulator.wait_post(predicate)

    async def wait_posted(self, predicate: Callable[[Post], bool] | None = None) -> Post:
        """See ``MattermostEmulator.wait_posted``."""
        return await self.emulator.wait_posted(predicate)

    async def wait_websocket_connected(
        self, user_id: str | None = None, *, nth: int | None = None
    ) -> ConnectRecord:
        """See ``MattermostEmulator.wait_websocket_connected``."""
        return await self.emulator.wait_websocket_connected(user_id, nth=nth)


def _config(emulator: MattermostEmulator) -> Config:
    config = Config()
    config.websocket_ping_interval = emulator.ping_interval
    config.graceful_timeout = 1.0
    config.accesslog = None
    config.errorlog = logging.getLogger("mmthreads.harness.mattermost.hypercorn")
    return config


async def serve_mattermost_emulator(
    emulator: MattermostEmulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[MattermostServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``emulator`` on ``host:port`` until cancelled or ``MattermostServer.stop()``.

    Args:
        emulator: What to serve.
        host: A loopback address.
        port: 0 picks a free port.
        task_status: Receives the ``MattermostServer`` once the port accepts connections.
    """
    stop = trio.Event()
    # The app types ASGI messages as plain dicts; hypercorn's TypedDicts are the same shapes.
    app = cast("ASGIFramework", MattermostApp(emulator))
    async with trio.open_nursery() as nursery:
        relay: TcpRelay = await nursery.start(
            partial(serve_behind_relay, app, _config(emulator), host=host, port=port)
        )
        emulator.abort_transport = relay.abort
        server = MattermostServer(emulator, relay, stop)
        logger.info("Mattermost emulator listening on %s", server.url)
        task_status.started(server)
        try:
            await stop.wait()
        finally:
            emulator.abort_transport = None
            # The relay cuts every connection, then hypercorn shuts down gracefully.
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_mattermost_emulator(
    *,
    plan: FaultPlan | None = None,
    rate_limit: RateLimit | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    emulator: MattermostEmulator | None = None,
) -> AsyncIterator[MattermostServer]:
    """Run an emulator for the duration of the ``async with`` block.

    Args:
        plan: Faults to inject.
        rate_limit: Enable rate limiting.
        host: A loopback address.
        port: 0 picks a free port.
        emulator: Serve this emulator instead of a new one (``plan``/``rate_limit`` ignored).

    Yields:
        The running server.
    """
    emulator = emulator or MattermostEmulator(plan=plan, rate_limit=rate_limit)
    # The body of the ``async with`` is not a child task: its exception (a failed assertion,
    # Cancelled) is kept out of the nursery and re-raised as is once the server has stopped,
    # instead of reaching the caller wrapped in an ExceptionGroup.  Errors of the server's
    # own tasks still propagate as the nursery's group.
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        server: MattermostServer = await nursery.start(
            partial(serve_mattermost_emulator, emulator, host=host, port=port)
        )
        try:
            yield server
        except BaseException as error:
            body_error = error
        finally:
            with trio.CancelScope(shield=True):
                await server.aclose()
            server.stop()
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None
