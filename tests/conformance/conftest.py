"""Fixtures for the conformance suite: the stub model and a real ``opencode serve``.

Every test in this folder is marked ``conformance``.  The real server needs the pinned binary:
run ``scripts/install-opencode.sh`` once (CI runs it before the tests), or point
``MMTHREADS_OPENCODE_BIN`` at an ``opencode`` executable.  A missing binary fails the tests that
need it, with that instruction; it never skips them.

Two ways to get a real server:

- ``real_opencode``: a fresh server per test (about 2 s to start, plus about 3 s of warm-up on
  its first turn), for tests that need their own config, password or restarts;
- ``shared_opencode``: one server and stub model per module, for tests that only play turns.
  pytest-trio fixtures live in one test's Trio run, so this one runs both in a background
  thread with its own ``trio.run``; tests reach the stub's record through ``trio.from_thread``.
  Each test uses its own session and filters events by session id; permission answers are
  ``once``, so no approval leaks from one test to the next.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio

from mmthreads.harness.real_opencode import (
    OPENCODE_LEGACY_VERSION,
    OPENCODE_VERSION,
    RealOpencode,
    make_git_project,
    open_real_opencode,
)
from mmthreads.harness.stub_model import RunningStubModel, open_stub_model

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from mmthreads.harness.stub_model import RecordedRequest

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "scripts" / "install-opencode.sh"
HERE = Path(__file__).resolve().parent
#: Where ``scripts/install-opencode.sh`` puts ``rg`` for the legacy release.
RG_FOLDER = ROOT / ".cache" / f"opencode-{OPENCODE_LEGACY_VERSION}" / "bin"

#: Seconds between streamed chunks in these tests: fast, but still a stream.
CHUNK_DELAY = 0.01


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "conformance: checks the harness against real servers and clients (run by CI)",
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(scope="session")
def opencode_binary() -> Path:
    """The ``opencode`` executable: ``$MMTHREADS_OPENCODE_BIN``, or the installed pinned one."""
    configured = os.environ.get("MMTHREADS_OPENCODE_BIN")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"MMTHREADS_OPENCODE_BIN={configured} is not an executable file")
        return path
    check = subprocess.run(
        [str(INSTALL_SCRIPT), "--check", OPENCODE_VERSION],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        pytest.fail(
            f"opencode {OPENCODE_VERSION} is not installed: run scripts/install-opencode.sh "
            f"(or set MMTHREADS_OPENCODE_BIN)\n{check.stderr.strip()}"
        )
    return Path(check.stdout.strip())


@pytest.fixture(scope="session")
def legacy_binary() -> Path:
    """``$MMTHREADS_OPENCODE_LEGACY_BIN``, or the installed legacy release.

    Such a server runs with ``pure=False`` and :data:`RG_FOLDER` on its ``PATH``.
    """
    configured = os.environ.get("MMTHREADS_OPENCODE_LEGACY_BIN")
    if configured:
        return Path(configured)
    check = subprocess.run(
        [str(INSTALL_SCRIPT), "--check", OPENCODE_LEGACY_VERSION],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        pytest.fail(
            f"opencode {OPENCODE_LEGACY_VERSION} is not installed: run "
            f"scripts/install-opencode.sh\n{check.stderr.strip()}"
        )
    return Path(check.stdout.strip())


@pytest.fixture
async def stub_model() -> AsyncIterator[RunningStubModel]:
    """A stub model on 127.0.0.1 with a short chunk delay."""
    async with open_stub_model(chunk_delay=CHUNK_DELAY) as stub:
        yield stub


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with one commit, the real server's working directory."""
    return make_git_project(tmp_path / "project")


@pytest.fixture
async def real_opencode(
    opencode_binary: Path,
    stub_model: RunningStubModel,
    project: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[RealOpencode]:
    """A fresh ``opencode serve`` in a temporary HOME, driven by ``stub_model``.

    Parametrize it indirectly with a dict of :func:`open_real_opencode` keyword arguments
    (``password``, ``permission_bash``, ``extra_config``) to change its set-up.
    """
    options: dict[str, Any] = getattr(request, "param", {})
    async with open_real_opencode(
        opencode_binary, model_url=stub_model.url, directory=project, **options
    ) as server:
        yield server


class SharedOpencode:
    """A real server and its stub model, served by a background thread for a whole module.

    Args:
        server: The real server (its attributes are plain values, safe to read here).
        stub: The stub model (its record is only appended to; safe to read here).
        token: The background run's token, to call into it.
    """

    def __init__(
        self, server: RealOpencode, stub: RunningStubModel, token: trio.lowlevel.TrioToken
    ) -> None:
        self.server = server
        self.stub = stub
        self._token = token

    @property
    def requests(self) -> list[RecordedRequest]:
        """The stub's record so far."""
        return self.stub.requests

    async def wait_request(
        self, predicate: Callable[[RecordedRequest], bool], *, start: int = 0
    ) -> RecordedRequest:
        """Wait, from the test's run, for a request the stub recorded in the background run."""
        call = functools.partial(self.stub.wait_request, predicate, start=start)

        def wait_in_background() -> RecordedRequest:
            return trio.from_thread.run(call, trio_token=self._token)

        return await trio.to_thread.run_sync(wait_in_background, abandon_on_cancel=True)


@pytest.fixture(scope="module")
def shared_opencode(
    opencode_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedOpencode]:
    """One real server and stub model for the module, run by a background thread."""
    project = make_git_project(tmp_path_factory.mktemp("shared") / "project")
    with serve_in_background(opencode_binary, project) as shared:
        yield shared


@contextlib.contextmanager
def serve_in_background(binary: Path, project: Path, **options: Any) -> Iterator[SharedOpencode]:
    """A real server and stub model run by a background thread for the block.

    Args:
        binary: The ``opencode`` executable.
        project: The server's working directory.
        options: More :func:`open_real_opencode` keyword arguments.
    """
    ready: queue.Queue[SharedOpencode | BaseException] = queue.Queue()
    stop = trio.Event()

    async def serve() -> None:
        try:
            async with (
                open_stub_model(chunk_delay=CHUNK_DELAY) as stub,
                open_real_opencode(
                    binary, model_url=stub.url, directory=project, **options
                ) as server,
            ):
                ready.put(SharedOpencode(server, stub, trio.lowlevel.current_trio_token()))
                await stop.wait()
        except BaseException as exc:  # handed to the fixture, which raises it in the test
            ready.put(exc)
            raise

    def run() -> None:
        try:
            trio.run(serve)
        except BaseException:
            logger.exception("the shared opencode server failed")

    thread = threading.Thread(target=run, name="shared-opencode", daemon=True)
    thread.start()
    shared = ready.get(timeout=120)
    if isinstance(shared, BaseException):
        thread.join()
        raise shared
    try:
        yield shared
    finally:
        with contextlib.suppress(trio.RunFinishedError):  # it may have crashed already
            trio.from_thread.run_sync(stop.set, trio_token=shared._token)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the shared opencode server did not stop"


class EventLog:
    """The ``/event`` stream of one instance, collected in the background.

    Args:
        client: A client for the server.
        directory: The instance to follow.
    """

    def __init__(self, client: httpx.AsyncClient, directory: Path) -> None:
        self.client = client
        self.directory = directory
        self.events: list[dict[str, Any]] = []
        self._changed = trio.Event()
        self._scope = trio.CancelScope()
        self._done = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read the stream; report started once ``server.connected`` arrived."""
        params = {"directory": str(self.directory)}
        timeout = httpx.Timeout(30.0, read=None)
        try:
            with self._scope:
                async with self.client.stream(
                    "GET", "/event", params=params, timeout=timeout
                ) as response:
                    assert response.status_code == 200
                    started = False
                    async for line in response.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        self.events.append(json.loads(line[len("data: ") :]))
                        self._changed.set()
                        self._changed = trio.Event()
                        if not started and self.events[-1]["type"] == "server.connected":
                            started = True
                            task_status.started()
        finally:
            self._done.set()

    async def aclose(self) -> None:
        """Stop reading and wait until the stream is closed."""
        self._scope.cancel()
        await self._done.wait()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, start: int = 0
    ) -> dict[str, Any]:
        """The first event (from index ``start``) matching ``predicate``, waiting for it."""
        while True:
            for event in self.events[start:]:
                if predicate(event):
                    return event
            await self._changed.wait()

    def of_session(self, session_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The events about one session, optionally of one type."""
        return [
            e
            for e in self.events
            if _session_of(e) == session_id and (kind is None or e["type"] == kind)
        ]


def _session_of(event: dict[str, Any]) -> str | None:
    props = event.get("properties", {})
    sid = props.get("sessionID") or props.get("part", {}).get("sessionID")
    return sid if isinstance(sid, str) else None


@pytest.fixture
async def shared_events(
    shared_opencode: SharedOpencode, nursery: trio.Nursery
) -> AsyncIterator[EventLog]:
    """The shared server's ``/event`` stream, subscribed before the test runs."""
    server = shared_opencode.server
    async with server.client() as client:
        log = EventLog(client, server.directory)
        await nursery.start(log.run)
        yield log
        await log.aclose()
