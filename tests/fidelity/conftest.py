"""Fixtures for the fidelity suite: clients we did not write, run against the Mattermost emulator.

The clients live outside the project venv, in git-ignored folders that
``scripts/install-mm-clients.sh`` fills: ``.cache/mm-client`` (the official JavaScript client,
run with ``node``) and ``.venv-mm`` (``mattermostdriver`` and ``schemathesis``).  A missing
install fails the tests loudly instead of skipping them: CI runs the script first.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from mmthreads.harness.mattermost import MattermostEmulator

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INSTALL = "scripts/install-mm-clients.sh"
SPEC_NAME = "mattermost-openapi-v4-2023.yaml"

#: Seconds one client flow may take, including process start-up.
FLOW_DEADLINE = 45.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fidelity: runs clients we did not write (official JS client, mattermostdriver, "
        f"schemathesis) against the Mattermost emulator; needs {INSTALL}",
    )


def _missing(what: str) -> NoReturn:
    pytest.fail(f"{what} is missing: run {INSTALL} first (it installs the fidelity clients)")


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        _missing("node (Node.js 20 or newer, on PATH)")
    return found


@pytest.fixture(scope="session")
def mm_client_dir() -> Path:
    folder = REPO / ".cache" / "mm-client"
    for package in ("@mattermost/client", "ws"):
        if not (folder / "node_modules" / package / "package.json").is_file():
            _missing(f"{folder / 'node_modules' / package}")
    return folder


@pytest.fixture(scope="session")
def mm_python() -> Path:
    python = REPO / ".venv-mm" / "bin" / "python"
    if not python.exists():
        _missing(str(python))
    return python


@pytest.fixture(scope="session")
def schemathesis_bin(mm_python: Path) -> Path:
    binary = mm_python.parent / "schemathesis"
    if not binary.exists():
        _missing(str(binary))
    return binary


@pytest.fixture(scope="session")
def openapi_spec() -> Path:
    """The merged 2023 Mattermost OpenAPI spec from the shared reference folder.

    It sits next to the checkout (``<checkout>/../shared/reference``); ``MMTHREADS_SHARED_DIR``
    names the shared folder when it lives elsewhere.
    """
    candidates = []
    if shared := os.environ.get("MMTHREADS_SHARED_DIR"):
        candidates.append(Path(shared) / "reference" / SPEC_NAME)
    candidates.append(REPO.parent / "shared" / "reference" / SPEC_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    pytest.fail(f"{SPEC_NAME} not found (tried {tried}); set MMTHREADS_SHARED_DIR")


@dataclass
class FlowResult:
    """What a client flow printed: one JSON object per check, plus the raw streams."""

    returncode: int
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""

    def failed(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check["ok"]]

    def created(self) -> dict[str, str]:
        detail: dict[str, str] = self.checks["created"]["detail"]
        return detail

    def explain(self) -> str:
        """A readable account for assertion messages: every failed check and the stderr tail."""
        lines = [f"exit code {self.returncode}"]
        for name in self.failed():
            lines.append(f"FAILED {name}: {json.dumps(self.checks[name]['detail'])[:2000]}")
        lines.append("--- stderr (tail) ---")
        lines.extend(self.stderr.splitlines()[-40:])
        return "\n".join(lines)

    def assert_ok(self, expected: Sequence[str]) -> None:
        """Exit code 0, every expected check present and ok, and no check failed."""
        absent = [name for name in expected if name not in self.checks]
        assert not absent, f"absent checks: {absent}\n{self.explain()}"
        assert not self.failed(), self.explain()
        assert self.returncode == 0, self.explain()


def parse_checks(stdout: str) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        name = record["check"]
        assert name not in checks, f"check {name} reported twice"
        checks[name] = record
    return checks


@pytest.fixture
def run_flow() -> Callable[..., Awaitable[FlowResult]]:
    """Runs a client flow process and parses its JSON-line report."""

    async def run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> FlowResult:
        full_env = {**os.environ, **(env or {})}
        with trio.fail_after(FLOW_DEADLINE):
            done = await trio.run_process(
                list(argv),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=full_env,
                cwd=REPO,
            )
        stdout = done.stdout.decode(errors="replace")
        return FlowResult(
            returncode=done.returncode,
            checks=parse_checks(stdout),
            stdout=stdout,
            stderr=done.stderr.decode(errors="replace"),
        )

    return run


def assert_emulator_state(
    emulator: MattermostEmulator, created: dict[str, str], *, bot_id: str, human_id: str
) -> None:
    """What the client did is really in the emulator, not only in the client's own view."""
    channel = created["channel_id"]
    thread = emulator.thread(created["root_id"])
    assert [post.id for post in thread] == [
        created["root_id"],
        created["reply_id"],
        created["file_post_id"],
    ]
    root, reply, file_post = thread
    assert root.user_id == bot_id
    assert root.channel_id == channel
    assert root.props.get("from_bot") == "true"
    assert reply.root_id == root.id
    assert reply.message == "first turn (edited)"
    assert reply.edit_at > 0
    assert file_post.file_ids == [created["file_id"]]
    assert emulator.state.files[created["file_id"]].post_id == file_post.id

    in_channel = {post.id: post for post in emulator.posts_in(channel, include_deleted=True)}
    assert in_channel[created["human_post_id"]].user_id == human_id
    assert in_channel[created["deleted_post_id"]].delete_at > 0
    assert created["deleted_post_id"] not in {p.id for p in emulator.posts_in(channel)}

    reactions = emulator.state.reactions.get(created["root_id"], [])
    assert [(r.user_id, r.emoji_name) for r in reactions] == [(bot_id, "white_check_mark")]

    # The bot's socket was authenticated and really attached.
    assert any(record.user_id == bot_id for record in emulator.connects)
    names = [event.event for event in emulator.events]
    for name in ("posted", "post_edited", "reaction_added", "post_deleted"):
        assert name in names, names
