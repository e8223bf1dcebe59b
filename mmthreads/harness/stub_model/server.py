"""Serving the stub model with hypercorn's Trio worker.

:func:`serve_stub_model` is the never-returning task (start it with ``nursery.start``);
:func:`open_stub_model` runs one in the background for the body of an ``async with`` and shuts
it down gracefully on the way out.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from mmthreads.harness.script import plan_step
from mmthreads.harness.stub_model.app import StubModelApp
from mmthreads.harness.stub_model.state import Planner, StubModel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from mmthreads.harness.faults import FaultPlan
    from mmthreads.harness.stub_model.state import RecordedRequest

__all__ = ["RunningStubModel", "open_stub_model", "serve_stub_model"]

logger = logging.getLogger(__name__)

#: Seconds hypercorn lets open streams finish after the shutdown trigger.
GRACEFUL_TIMEOUT: Final = 0.5


async def serve_stub_model(
    model: StubModel,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``model`` over HTTP until cancelled or until ``shutdown_trigger`` returns.

    Start it with ``url = await nursery.start(serve_stub_model, model)``.

    Args:
        model: The stub model to serve.
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one.
        shutdown_trigger: Returning from it shuts the server down gracefully.
        task_status: Receives the base URL, e.g. ``http://127.0.0.1:41234/v1``, once listening
            (hypercorn's ``task_status.started(binds)`` gives the bound address).
    """
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.errorlog = logger  # hypercorn logs to stderr by default
    app = StubModelApp(model)

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        url = binds[0] + "/v1"
        logger.info("%r: serving on %s", model, url)
        task_status.started(url)


class RunningStubModel:
    """A stub model being served: its base URL and its record.

    Args:
        model: The model being served.
        url: Its base URL, ending in ``/v1`` (what OpenCode's provider ``baseURL`` takes).
    """

    def __init__(self, model: StubModel, url: str) -> None:
        self.model = model
        self.url = url

    def __repr__(self) -> str:
        return f"<RunningStubModel url={self.url} requests={len(self.model.requests)}>"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order."""
        return self.model.requests

    async def wait_request(
        self,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        *,
        start: int = 0,
    ) -> RecordedRequest:
        """Wait for a matching request; see :meth:`StubModel.wait_request`."""
        return await self.model.wait_request(predicate, start=start)


@asynccontextmanager
async def open_stub_model(
    *,
    chunk_delay: float | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    planner: Planner = plan_step,
    plan: FaultPlan | None = None,
) -> AsyncIterator[RunningStubModel]:
    """Serve a new :class:`StubModel` for the body of an ``async with`` block.

    Args:
        chunk_delay: Seconds before each streamed piece; the script's ``CHUNK_DELAY`` if ``None``.
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one.
        planner: Decides each step (the shared script by default).
        plan: Faults to inject.

    Yields:
        The running model, with its ``url`` and record.
    """
    model = StubModel(chunk_delay=chunk_delay, planner=planner, plan=plan)
    stop = trio.Event()

    async def run(task_status: trio.TaskStatus[str]) -> None:
        await serve_stub_model(
            model, host=host, port=port, shutdown_trigger=stop.wait, task_status=task_status
        )

    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(run)
        try:
            yield RunningStubModel(model, url)
        finally:
            stop.set()
            # Graceful shutdown waits for open streams; a stuck client must not hold us here.
            nursery.cancel_scope.deadline = trio.current_time() + 2 * GRACEFUL_TIMEOUT + 1
