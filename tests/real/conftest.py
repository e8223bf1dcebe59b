"""Fixtures of the bridge against a real ``opencode serve``: the emulator, the bridge, the server.

Every test in this folder is marked ``real_opencode``.  The bridge (``serve``) runs in the test's
Trio run between the Mattermost emulator and a real ``opencode serve`` driven by the stub model,
all on 127.0.0.1 and free ports.  The server needs the pinned binary, exactly as the conformance
suite does (``scripts/install-opencode.sh``, or ``MMTHREADS_OPENCODE_BIN``).

Three ways to get the server:

- ``shared_real``: one server and stub model for the whole folder, served by a background
  thread (``tests.conformance.conftest.SharedOpencode``), so only the first test pays for the
  cold start.  Each test starts its own emulator and bridge, uses its own project directory and
  sessions, and the bridge adopts no session that existed before it started, so nothing leaks
  from one test into the next (not even an "always" approval: those are per directory);
- ``own_real``: a server of the test's own, in the test's run, for tests that kill or restart it;
- ``legacy_real``: one server of the older release (``OPENCODE_LEGACY_VERSION``) per module,
  served like ``shared_real`` (``scripts/install-opencode.sh`` installs it too, or
  ``MMTHREADS_OPENCODE_LEGACY_BIN``); ``legacy_bridge`` is the bridge following it.
"""

from __future__ import annotations

import itertools
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import pytest
import trio

from mmthreads.core.backoff import RetryPolicy
from mmthreads.core.cards import PERMISSION_PROP
from mmthreads.harness.mattermost import open_mattermost_emulator
from mmthreads.harness.real_opencode import make_git_project, open_real_opencode
from mmthreads.harness.stub_model import open_stub_model
from mmthreads.runtime.recovery import TURN_FINAL_PROP
from mmthreads.settings import RetryPolicies, Settings, load_settings
from tests.conformance.conftest import (
    CHUNK_DELAY,
    RG_FOLDER,
    SharedOpencode,
    legacy_binary,
    opencode_binary,
    serve_in_background,
)
from tests.service_side import ChatSide

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    import httpx

    from mmthreads.harness.mattermost import Post
    from mmthreads.harness.real_opencode import RealOpencode
    from mmthreads.harness.stub_model import RecordedRequest, Turn

__all__ = ["legacy_binary", "opencode_binary"]  # the conformance fixtures, shared

HERE: Final = Path(__file__).resolve().parent
#: Every test must finish within this many seconds of real time (a cold server's first turn
#: takes about 5 s on a busy CI machine).
WATCHDOG: Final = 60.0
EDIT_INTERVAL: Final = 0.05
#: OpenCode reconnects quickly (the default backoff grows to 30 s).
FAST_RETRY: Final = RetryPolicy(initial_delay=0.1, factor=2.0, max_delay=0.5)
DONE: Final = ":checkered_flag: **Done**"

_project_numbers = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_opencode: the bridge against a real opencode serve and the stub model (run by CI)",
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.real_opencode)


class Server:
    """What a test needs of a real server, wherever it runs.

    Args:
        server: The running server.
        requests: The stub model's record (read at call time).
        wait_request: Waits for a recorded request matching a predicate.
    """

    def __init__(
        self,
        server: RealOpencode,
        requests: Callable[[], list[RecordedRequest]],
        wait_request: Callable[..., Any],
    ) -> None:
        self.real = server
        self._requests = requests
        self._wait_request = wait_request

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.real.url

    @property
    def requests(self) -> list[RecordedRequest]:
        """What the stub model received so far."""
        return self._requests()

    async def wait_request(
        self, predicate: Callable[[RecordedRequest], bool], *, start: int = 0
    ) -> RecordedRequest:
        """The first request (from index ``start``) the stub recorded matching ``predicate``."""
        request: RecordedRequest = await self._wait_request(predicate, start=start)
        return request

    def client(self) -> httpx.AsyncClient:
        """A new HTTP client for the server (close it)."""
        return self.real.client()

    async def create_session(self, directory: Path, title: str | None = None) -> str:
        """Create a session in ``directory`` as a TUI would, through the API."""
        body = {} if title is None else {"title": title}
        async with self.client() as client:
            response = await client.post(
                "/session", params={"directory": str(directory)}, json=body
            )
        assert response.status_code == 200, response.text
        session_id: str = response.json()["id"]
        return session_id

    async def delete_session(self, directory: Path, session_id: str) -> None:
        """Delete a session through the API."""
        async with self.client() as client:
            response = await client.delete(
                f"/session/{session_id}", params={"directory": str(directory)}
            )
        assert response.status_code == 200, response.text

    async def get(self, path: str, directory: Path) -> Any:
        """``GET path`` for ``directory``, decoded."""
        async with self.client() as client:
            response = await client.get(path, params={"directory": str(directory)})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="package")
def shared_server(
    opencode_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedOpencode]:
    """One real server and stub model for every test of this folder, run by a background thread.

    pytest-trio fixtures live in one test's Trio run, so the server gets a ``trio.run`` of its
    own; tests reach the stub's record through ``trio.from_thread``.
    """
    project = make_git_project(tmp_path_factory.mktemp("shared") / "project")
    with serve_in_background(opencode_binary, project) as shared:
        yield shared


@pytest.fixture
def shared_real(shared_server: SharedOpencode) -> Server:
    """The shared server, as a test sees it."""
    return Server(shared_server.server, lambda: shared_server.requests, shared_server.wait_request)


@pytest.fixture(scope="module")
def legacy_server(
    legacy_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedOpencode]:
    """One server of the older release (``OPENCODE_LEGACY_VERSION``) per module, in the background.

    That release rejects ``--pure`` and needs ``rg`` on its ``PATH`` to start a turn offline.
    """
    project = make_git_project(tmp_path_factory.mktemp("legacy") / "project")
    with serve_in_background(legacy_binary, project, pure=False, extra_path=[RG_FOLDER]) as shared:
        yield shared


@pytest.fixture
def legacy_real(legacy_server: SharedOpencode) -> Server:
    """The module's legacy server, as a test sees it."""
    return Server(legacy_server.server, lambda: legacy_server.requests, legacy_server.wait_request)


@pytest.fixture
async def own_real(opencode_binary: Path, tmp_path: Path) -> AsyncIterator[Server]:
    """A server and stub model of the test's own, in its run (it may kill or restart it)."""
    project = make_git_project(tmp_path / "server-home-project")
    async with (
        open_stub_model(chunk_delay=CHUNK_DELAY) as stub,
        open_real_opencode(opencode_binary, model_url=stub.url, directory=project) as server,
    ):
        yield Server(server, lambda: stub.requests, stub.wait_request)


class Bridge(ChatSide):
    """The emulator, the owner, and the bridge between it and a real OpenCode server."""

    async def prompt(self, root: Post, text: str, *, file_ids: list[str] | None = None) -> Post:
        """The owner replies in a session's thread."""
        return await self.human.post(self.dm_id, text, root_id=root.id, file_ids=file_ids)

    async def answer(self, root_id: str, *, after: Post | None = None) -> Post:
        """The bot's first finished answer in the thread (created after ``after``, if given)."""
        return await self.bot_reply(
            root_id,
            lambda p: DONE in p.message and (after is None or p.create_at >= after.create_at),
        )

    def thread(self, root_id: str) -> list[Post]:
        """The thread's posts, root first."""
        return self.mm.thread(root_id)


def bridge_settings(env: dict[str, str], mapping_file: Path) -> Settings:
    """The bridge's settings for these tests: fast edits, fast reconnects, no adoption."""
    flags: dict[str, object] = {"edit_interval": EDIT_INTERVAL, "mapping_file": str(mapping_file)}
    settings = load_settings(env=env, config_path=None, flags=flags)
    return msgspec.structs.replace(
        settings,
        # Sessions of earlier tests on the shared server are not this test's business.
        sessions=msgspec.structs.replace(settings.sessions, adoption_window=0.0),
        retry=RetryPolicies(
            mattermost=FAST_RETRY, opencode=FAST_RETRY, restart=settings.retry.restart
        ),
    )


@asynccontextmanager
async def open_bridge(opencode_url: str, home: Path) -> AsyncIterator[Bridge]:
    """An emulator with the bot and its owner, and a (not yet started) bridge to OpenCode.

    Args:
        opencode_url: The OpenCode server the bridge follows.
        home: The bridge's HOME; its mapping file goes there.
    """
    async with open_mattermost_emulator() as mm, trio.open_nursery() as nursery:
        bot = mm.create_user("mmthreads", bot=True)
        owner = mm.create_user("alice")
        human = mm.human(owner)
        dm = await human.dm_with(bot)
        env = {
            "HOME": str(home),
            "MATTERMOST_URL": mm.url,
            "MATTERMOST_TOKEN": bot.token,
            "MATTERMOST_OWNER_USER_ID": owner.id,
            "OPENCODE_URL": opencode_url,
        }
        yield Bridge(
            mm=mm,
            bot=bot,
            owner=owner,
            human=human,
            dm_id=dm.id,
            settings=bridge_settings(env, home / "threads.json"),
            nursery=nursery,
        )
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_running_bridge(opencode_url: str, home: Path) -> AsyncIterator[Bridge]:
    """:func:`open_bridge`, started for the block and stopped gracefully after it."""
    async with open_bridge(opencode_url, home) as made:
        with trio.fail_after(WATCHDOG):
            running = await made.start()
        yield made
        with trio.fail_after(WATCHDOG):
            await running.stop()


@pytest.fixture
async def bridge(shared_real: Server, tmp_path: Path) -> AsyncIterator[Bridge]:
    """A started bridge between the emulator and the shared real server."""
    async with open_running_bridge(shared_real.url, tmp_path) as made:
        yield made


@pytest.fixture
async def legacy_bridge(legacy_real: Server, tmp_path: Path) -> AsyncIterator[Bridge]:
    """A started bridge between the emulator and the module's legacy server."""
    async with open_running_bridge(legacy_real.url, tmp_path) as made:
        yield made


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git project (its own OpenCode instance, project id and approvals)."""
    return make_git_project(tmp_path / f"project-{next(_project_numbers)}")


def is_final(post: Post) -> bool:
    """Whether the post is a turn's answer showing the turn's last state."""
    return post.props.get(TURN_FINAL_PROP) == "true"


def turn_requests(server: Server, prompt: str) -> list[RecordedRequest]:
    """The stub's requests for the turn (not the title) of ``prompt``, in order."""
    return [
        r for r in server.requests if r.turn is not None and not r.is_title and r.prompt == prompt
    ]


def tool_results(server: Server, prompt: str) -> list[tuple[str, ...]]:
    """What the model got back from tool calls, request by request, in the turn of ``prompt``."""
    turns: list[Turn] = [r.turn for r in turn_requests(server, prompt) if r.turn is not None]
    return [turn.tool_results for turn in turns]


async def tool_calls_of(server: Server, directory: Path, session_id: str) -> list[dict[str, Any]]:
    """The session's tool parts, in order, from OpenCode's own history."""
    messages = await server.get(f"/session/{session_id}/message", directory)
    return [part for m in messages for part in m["parts"] if part["type"] == "tool"]


# --- the permission card: everything this suite assumes about its text is here -------------


def is_permission_card(post: Post) -> bool:
    """Whether the post is a permission card."""
    return PERMISSION_PROP in post.props


async def wait_permission_card(bridge: Bridge, root: Post, *, after: Post | None = None) -> Post:
    """The card of the permission pending in the thread (posted after ``after``, if given)."""
    return await bridge.bot_reply(
        root.id,
        lambda p: is_permission_card(p) and (after is None or p.create_at >= after.create_at),
    )


async def wait_reason_asked(bridge: Bridge, card: Post) -> None:
    """Wait until a ❌ on the card waits for the owner's reason."""
    await bridge.mm.wait_post(lambda p: p.id == card.id and "Rejecting" in p.message)
