"""Running a real ``opencode serve`` offline, against the stub model, for conformance tests.

The recipe is ``reference/opencode-server-api.md`` §4.  :func:`open_real_opencode`:

1. makes a temporary HOME with its own XDG tree, so the server's database, snapshots, logs and
   plugin cache live there and vanish afterwards;
2. builds the environment: that HOME, the ``OPENCODE_DISABLE_*`` flags (no models.dev fetch, no
   auto-update, no default plugins, no LSP downloads, no sharing, no Claude Code or external
   skills, no project config, no auto-compaction), ``npm_config_registry`` pointing at a closed
   local port (so the background plugin install fails fast instead of downloading ~95 MB), and
   ``OPENCODE_CONFIG_CONTENT`` holding a config with only the stub provider
   (:func:`opencode_config`).  Inherited ``OPENCODE_*`` and ``*_API_KEY`` variables are dropped;
3. starts ``opencode serve --port P --hostname 127.0.0.1 --pure`` in ``directory``, in its own
   process group, with stdout and stderr in ``serve.log``;
4. waits for ``GET /global/health`` to answer 200 and reads the version from it (a server
   without that route is ready once ``GET /path`` answers 200; its version then comes from
   ``opencode --version``);
5. on the way out sends SIGTERM to the server's PID, SIGKILL if it has not exited within
   :data:`STOP_DEADLINE`, sweeps what is left of its process group (commands the bash tool
   started), and removes the temporary tree.

Get a binary with ``scripts/install-opencode.sh`` (it prints the path).  Directories used as
projects should be git repositories with one commit (:func:`make_git_project`): OpenCode gives
every directory without a commit the same project id, ``global``.

Older releases need two options of :func:`open_real_opencode`: ``pure=False``, since 1.0-era
``serve`` rejects ``--pure`` (it prints its usage and exits), and ripgrep on the PATH
(``extra_path``), since a 1.0-era server otherwise downloads ``rg`` from GitHub before its first
model call and cancels the turn when it cannot.  ``scripts/install-opencode.sh`` installs
:data:`OPENCODE_LEGACY_VERSION` with an ``rg`` in its ``bin/`` folder.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

import httpx
import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

__all__ = [
    "DISABLE_FLAGS",
    "HEALTH_DEADLINE",
    "OPENCODE_LEGACY_VERSION",
    "OPENCODE_VERSION",
    "STOP_DEADLINE",
    "STUB_MODEL",
    "STUB_PROVIDER",
    "OpencodeStartError",
    "RealOpencode",
    "make_git_project",
    "open_real_opencode",
    "opencode_config",
    "opencode_env",
]

logger = logging.getLogger(__name__)

#: The release the harness is tested against (``scripts/install-opencode.sh`` installs it).
OPENCODE_VERSION: Final = "1.18.33"
#: An older release with the older event dialect (``permission.updated``, text deltas inside
#: ``message.part.updated``, no ``/global/health``), installed beside the pinned one.
OPENCODE_LEGACY_VERSION: Final = "1.0.185"

#: The provider id of the stub model in the generated config.
STUB_PROVIDER: Final = "stub"
#: The model id of the stub model in the generated config.
STUB_MODEL: Final = "stub-model"

#: Seconds to wait for ``/global/health`` after starting (a cold start takes about 2 s).
HEALTH_DEADLINE: Final = 30.0
#: Seconds between SIGTERM and SIGKILL when stopping (a clean exit takes about 1-2 s).
STOP_DEADLINE: Final = 5.0

#: Environment flags that keep the server offline and independent of the user's set-up.
DISABLE_FLAGS: Final[Mapping[str, str]] = {
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
    "OPENCODE_DISABLE_AUTOCOMPACT": "1",
}

#: A closed local port: npm fails at once instead of installing ``@opencode-ai/plugin``.
DEAD_REGISTRY: Final = "http://127.0.0.1:9/"

_POLL_INTERVAL: Final = 0.05
# A request that connects while the server is still booting can stay unanswered for good
# (observed with 1.18.33), so each health probe gets a short timeout of its own.
_PROBE_TIMEOUT: Final = 0.5
_LOG_TAIL_LINES: Final = 40


class OpencodeStartError(RuntimeError):
    """``opencode serve`` exited or did not become healthy; the message ends with its log."""


def opencode_config(
    model_url: str,
    *,
    permission_bash: str = "ask",
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The OpenCode config that knows only the stub model (§4.3 step 3).

    Args:
        model_url: The stub's base URL, ending in ``/v1``.
        permission_bash: The ``permission.bash`` rule: ``"ask"``, ``"allow"`` or ``"deny"``.
        extra: Merged on top, dictionaries recursively (e.g. model capabilities).

    Returns:
        The config, ready for ``OPENCODE_CONFIG_CONTENT``.
    """
    model = f"{STUB_PROVIDER}/{STUB_MODEL}"
    config: dict[str, object] = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": model,
        "small_model": model,
        "enabled_providers": [STUB_PROVIDER],
        "lsp": False,
        "formatter": False,
        "permission": {"bash": permission_bash},
        "provider": {
            STUB_PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Stub LLM",
                "options": {"baseURL": model_url, "apiKey": "stub-key"},
                "models": {
                    STUB_MODEL: {
                        "name": "Stub Model",
                        "tool_call": True,
                        "limit": {"context": 32000, "output": 4096},
                    }
                },
            }
        },
    }
    if extra:
        _merge(config, extra)
    return config


def _merge(base: dict[str, object], extra: Mapping[str, object]) -> None:
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value)
        else:
            base[key] = copy.deepcopy(value)


def opencode_env(
    home: Path,
    config: Mapping[str, object],
    *,
    password: str | None = None,
    base: Mapping[str, str] | None = None,
    extra_path: Sequence[Path] = (),
) -> dict[str, str]:
    """The environment for an isolated ``opencode serve``.

    Args:
        home: The temporary HOME; the XDG directories go inside it.
        config: The config to pass in ``OPENCODE_CONFIG_CONTENT``.
        password: Turns on basic auth (user ``opencode``) when given.
        base: The environment to start from (``os.environ`` by default); its ``OPENCODE_*``
            variables and API keys are dropped.
        extra_path: Folders put in front of ``PATH`` (e.g. one holding ``rg``).

    Returns:
        The complete environment.
    """
    inherited = os.environ if base is None else base
    env = {
        k: v
        for k, v in inherited.items()
        if not k.startswith("OPENCODE_") and not k.endswith("_API_KEY")
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        npm_config_registry=DEAD_REGISTRY,
        OPENCODE_CONFIG_CONTENT=json.dumps(config),
    )
    env.update(DISABLE_FLAGS)
    if extra_path:
        folders = [str(folder) for folder in extra_path]
        env["PATH"] = os.pathsep.join([*folders, env.get("PATH", os.defpath)])
    if password is not None:
        env["OPENCODE_SERVER_PASSWORD"] = password
    return env


def make_git_project(directory: Path, *, files: Mapping[str, str] | None = None) -> Path:
    """Make ``directory`` a git repository with one commit, so it gets its own project id.

    A directory that already is a repository with a commit is left as it is.

    Args:
        directory: Created if missing.
        files: Files to write and commit, by relative path; a ``README.md`` when ``None``.

    Returns:
        The directory, resolved.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / ".git").exists():
        head = ["git", "rev-parse", "--verify", "--quiet", "HEAD"]
        if subprocess.run(head, cwd=directory, capture_output=True).returncode == 0:
            return directory
    for name, text in (files or {"README.md": f"# {directory.name}\n"}).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git = ["git", "-c", "user.name=mmthreads harness", "-c", "user.email=harness@mmthreads.invalid"]
    for argv in (
        [*git, "init", "--quiet"],
        [*git, "add", "--all"],
        [*git, "-c", "commit.gpgsign=false", "commit", "--quiet", "--allow-empty", "-m", "Initial"],
    ):
        subprocess.run(argv, cwd=directory, check=True, capture_output=True)
    return directory


def _is_json(response: httpx.Response) -> bool:
    ctype: str = response.headers.get("content-type", "")
    return ctype.startswith("application/json")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RealOpencode:
    """A running ``opencode serve`` in an isolated HOME.

    Made by :func:`open_real_opencode`; the attributes change only on :meth:`restart`.
    """

    def __init__(
        self,
        binary: Path,
        *,
        directory: Path,
        home: Path,
        env: dict[str, str],
        port: int,
        password: str | None,
        pure: bool = True,
    ) -> None:
        #: The ``opencode`` executable.
        self.binary = binary
        #: The server's working directory (its default project).
        self.directory = directory
        #: The temporary HOME holding all of the server's state.
        self.home = home
        #: The server's stdout and stderr, across restarts.
        self.log_path = home / "serve.log"
        #: Base URL, e.g. ``http://127.0.0.1:40123`` (the same after a restart).
        self.url = f"http://127.0.0.1:{port}"
        #: The basic-auth password, if any (the user name is ``opencode``).
        self.password = password
        #: The version reported by ``/global/health`` (or by ``opencode --version`` when the
        #: server has no such route).
        self.version = ""
        #: Whether ``serve`` gets ``--pure`` (no external plugins; 1.0-era servers reject it).
        self.pure = pure
        self._env = env
        self._port = port
        self._process: trio.Process | None = None

    def __repr__(self) -> str:
        return f"<RealOpencode url={self.url} pid={self.pid} version={self.version or '?'}>"

    @property
    def pid(self) -> int:
        """The server's process id (-1 when it is not running)."""
        return self._process.pid if self._process is not None else -1

    @property
    def auth(self) -> tuple[str, str] | None:
        """Credentials for ``httpx`` (``auth=``), or ``None`` without a password."""
        return ("opencode", self.password) if self.password is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.returncode is None

    def client(self) -> httpx.AsyncClient:
        """A new HTTP client for this server (base URL and credentials set; close it)."""
        return httpx.AsyncClient(base_url=self.url, auth=self.auth, timeout=30.0)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def start(self) -> None:
        """Start the server and wait until ``/global/health`` answers 200.

        Raises:
            OpencodeStartError: The process exited, or was not healthy within
                :data:`HEALTH_DEADLINE` seconds (it is stopped then).
        """
        argv = [str(self.binary), "serve", "--port", str(self._port)]
        argv += ["--hostname", "127.0.0.1"]
        if self.pure:
            argv.append("--pure")
        with self.log_path.open("ab") as log:
            self._process = await trio.lowlevel.open_process(
                argv,
                cwd=self.directory,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, swept on stop
            )
        logger.info("%r: started %s", self, " ".join(argv))
        try:
            with trio.fail_after(HEALTH_DEADLINE):
                self.version = await self._wait_healthy()
        except (trio.TooSlowError, OpencodeStartError) as exc:
            await self.stop()
            reason = (
                f"not healthy after {HEALTH_DEADLINE:g} s"
                if isinstance(exc, trio.TooSlowError)
                else str(exc)
            )
            raise OpencodeStartError(
                f"opencode serve ({self.binary}) {reason}; log tail:\n{self.log_tail()}"
            ) from None
        logger.info("%r: healthy", self)

    async def _wait_healthy(self) -> str:
        process = self._process
        assert process is not None
        async with httpx.AsyncClient(
            base_url=self.url, auth=self.auth, timeout=_PROBE_TIMEOUT
        ) as client:
            while True:
                if process.returncode is not None:
                    raise OpencodeStartError(f"exited with status {process.returncode}")
                try:
                    response = await client.get("/global/health")
                    if response.status_code == 200:
                        return str(response.json().get("version", ""))
                    if response.status_code != 401 and _is_json(response):
                        # A server before /global/health: it proxies the unknown route to the
                        # web app, which fails offline with a JSON 500.
                        if (await client.get("/path")).status_code == 200:
                            return await self._binary_version()
                except httpx.TransportError:
                    pass
                await trio.sleep(_POLL_INTERVAL)

    async def _binary_version(self) -> str:
        result = await trio.run_process(
            [str(self.binary), "--version"], env=self._env, capture_stdout=True, check=False
        )
        return result.stdout.decode(errors="replace").strip()

    async def stop(self) -> None:
        """Stop the server: SIGTERM to its PID, SIGKILL after :data:`STOP_DEADLINE` seconds."""
        process = self._process
        if process is None:
            return
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(STOP_DEADLINE):
                    await process.wait()
                if process.returncode is None:
                    logger.warning("%r: no exit %g s after SIGTERM, killing", self, STOP_DEADLINE)
                    process.kill()
                    await process.wait()
            self._sweep_group(process.pid)
        logger.info("%r: stopped (status %s)", self, process.returncode)

    async def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would, and wait for it to exit."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            self._sweep_group(process.pid)
        logger.info("%r: killed", self)

    async def restart(self) -> None:
        """Stop the server if it runs, then start it again on the same port with the same HOME.

        Sessions and messages survive: they are in the database under HOME.
        """
        await self.stop()
        await self.start()

    @staticmethod
    def _sweep_group(pgid: int) -> None:
        """Kill what is left of the server's own process group (e.g. a command it ran)."""
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is empty: nothing to sweep
        except PermissionError:
            logger.warning("process group %d is not ours any more; not sweeping it", pgid)


@asynccontextmanager
async def open_real_opencode(
    binary: Path,
    *,
    model_url: str,
    directory: Path,
    password: str | None = None,
    permission_bash: str = "ask",
    extra_config: Mapping[str, object] | None = None,
    pure: bool = True,
    extra_path: Sequence[Path] = (),
) -> AsyncIterator[RealOpencode]:
    """Run ``opencode serve`` in a temporary HOME for the body of an ``async with`` block.

    Args:
        binary: The ``opencode`` executable (``scripts/install-opencode.sh`` prints its path).
        model_url: The stub model's base URL, ending in ``/v1``.
        directory: The server's working directory, its default project.
        password: Turns on basic auth (user ``opencode``).
        permission_bash: The config's ``permission.bash`` rule.
        extra_config: Merged into the generated config (see :func:`opencode_config`).
        pure: Pass ``--pure`` (no external plugins); ``False`` for 1.0-era servers.
        extra_path: Folders put in front of the server's ``PATH``; a 1.0-era server needs one
            holding ``rg``.

    Yields:
        The healthy server.

    Raises:
        OpencodeStartError: The server did not become healthy.
    """
    home = Path(tempfile.mkdtemp(prefix="mmthreads-opencode-"))
    try:
        config = opencode_config(model_url, permission_bash=permission_bash, extra=extra_config)
        server = RealOpencode(
            binary,
            directory=directory,
            home=home,
            env=opencode_env(home, config, password=password, extra_path=extra_path),
            port=_free_port("127.0.0.1"),
            password=password,
            pure=pure,
        )
        try:
            await server.start()
            yield server
        finally:
            await server.stop()  # shielded: also runs when the start is cancelled
    finally:
        shutil.rmtree(home, ignore_errors=True)
