"""Configuration: one frozen :class:`Settings`, from flags, a TOML file, the environment, defaults.

Where each value comes from
---------------------------
:func:`load_settings` reads four layers and, key by key, the highest one that sets a key wins:

1. command-line flags (the CLI passes them as a mapping, see :data:`FLAGS`);
2. the TOML file given with ``--config`` (every option; unknown keys are refused);
3. the environment: the original plugin's variables (``MATTERMOST_URL``, ``MATTERMOST_TOKEN``,
   ``MATTERMOST_OWNER_USER_ID``, ``OPENCODE_SERVER_PASSWORD``, …), so a plugin user's shell
   works unchanged, plus a few ``MMTHREADS_*`` ones (:data:`ENV_VARS`);
4. the defaults written on the Structs below.

A list set by a higher layer replaces the lower one's; it is not appended to it.

Secrets (the bot token and the OpenCode password) are read from the environment or the file,
never from flags: a command line is visible to every user of the machine in the process list.
They are held in :class:`Secret`, whose ``repr`` and ``str`` never show the value, so printing
the settings or logging them leaks nothing; no error message quotes them either.

Every problem is one :class:`~mmthreads.errors.ConfigError` line that names the variable, key or
flag to fix; wrong types carry msgspec's ``$.path``. Missing owners are an error, not "everyone":
the bridge forwards text to an agent that runs shell commands, so it fails closed.

The full list of options is ``docs/reference/configuration.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec

from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import ConfigError
from mmthreads.mapping_store import default_mapping_path
from mmthreads.secret import Secret
from mmthreads.settings_sources import (
    ENV_VARS,
    FLAGS,
    convert,
    env_layer,
    file_layer,
    flag_layer,
    merge,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_OPENCODE_URL",
    "ENV_VARS",
    "FLAGS",
    "ControlSettings",
    "FileSettings",
    "FloodSettings",
    "MattermostSettings",
    "OpenCodeSettings",
    "RetryPolicies",
    "Secret",
    "SessionSettings",
    "Settings",
    "StreamSettings",
    "Timeouts",
    "load_settings",
]

#: ``opencode serve``'s default address: the bridge usually runs next to it.
DEFAULT_OPENCODE_URL: Final = "http://127.0.0.1:4096"
# Mattermost ids are 26 characters of its base32 alphabet (model.NewId); usernames are
# lowercase letters, digits and . - _ (model.IsValidUsername; up to 64 here, to stay lenient).
_USER_ID: Final = re.compile(r"[a-z0-9]{26}")
_USERNAME: Final = re.compile(r"[a-z0-9._-]{1,64}")

PositiveFloat: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat: TypeAlias = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt: TypeAlias = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt: TypeAlias = Annotated[int, msgspec.Meta(ge=0)]
LogLevel: TypeAlias = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Policy base: settings never change once loaded, and a misspelt key is an error."""


class MattermostSettings(_Config, frozen=True, kw_only=True):
    """The Mattermost server, the bot's token, and who may drive sessions.

    Attributes:
        url: Base URL, normalised without a trailing ``/`` or ``/api/v4``.
        token: The bot account's access token.
        owner_user_ids: User ids of the owners.
        owner_usernames: Usernames of further owners (resolved to ids at start-up).
    """

    url: str = ""
    token: Secret = Secret()
    owner_user_ids: tuple[str, ...] = ()
    owner_usernames: tuple[str, ...] = ()


class OpenCodeSettings(_Config, frozen=True, kw_only=True):
    """The OpenCode servers to follow and their basic-auth credentials.

    Attributes:
        urls: One base URL per ``opencode serve`` (normalised, without a trailing ``/``).
        username: Basic-auth user (OpenCode's own default).
        password: Basic-auth password; empty for a server without auth.
    """

    urls: tuple[str, ...] = (DEFAULT_OPENCODE_URL,)
    username: str = "opencode"
    password: Secret = Secret()


class StreamSettings(_Config, frozen=True, kw_only=True):
    """How answers stream into threads.

    Attributes:
        edit_interval: Seconds between two edits of one post (each edit notifies clients and
            counts against Mattermost's rate limit).
    """

    edit_interval: PositiveFloat = 1.0


class SessionSettings(_Config, frozen=True, kw_only=True):
    """Bounds of the per-session machinery.

    Attributes:
        queue_limit: Prompts kept per thread while its OpenCode server is unreachable.
        inbox_size: Events buffered per session task before the dispatcher waits.
        adoption_window: At the first start, sessions active this many seconds ago or later
            get a thread; older ones are left alone.
        disconnect_notice_delay: Seconds a thread's "disconnected" notice waits before it is
            posted; a server back within them posts neither it nor the "reconnected" one.
    """

    queue_limit: NonNegativeInt = 20
    inbox_size: PositiveInt = 64
    adoption_window: NonNegativeFloat = 3600.0
    disconnect_notice_delay: NonNegativeFloat = 5.0


class FileSettings(_Config, frozen=True, kw_only=True):
    """Attachments in both directions.

    Attributes:
        max_size: Largest file, in bytes, forwarded either way (the plugin's default, 10 MiB).
    """

    max_size: PositiveInt = 10 * 1024 * 1024


class ControlSettings(_Config, frozen=True, kw_only=True):
    """Permission and question cards in the threads.

    Attributes:
        permission_timeout: Seconds after which a permission nobody answered is rejected
            (the model is told why); 0 waits for ever.
        reject_reason_timeout: Seconds a ❌ reject waits for a reason (the owner's next reply
            in the thread) before it is sent without one; 0 rejects at once.
    """

    permission_timeout: NonNegativeFloat = 1800.0
    reject_reason_timeout: NonNegativeFloat = 60.0


class FloodSettings(_Config, frozen=True, kw_only=True):
    """The flood limit on an owner's posts (a token bucket per owner, ``mmthreads.core.flood``).

    Attributes:
        burst: Posts handled in a row before the limit applies.
        refill_interval: Seconds per post regained after that (one post per this many seconds).
    """

    burst: PositiveInt = 10
    refill_interval: PositiveFloat = 3.0


class Timeouts(_Config, frozen=True, kw_only=True):
    """Every time limit, in seconds.

    Attributes:
        connect_timeout: Opening a connection to either server.
        request_timeout: One REST request, from sending to the whole answer.
        agent_heartbeat_timeout: Silence on OpenCode's event stream (heartbeats come every
            10 s) after which it counts as dead.
        chat_ping_delay: Between two pings on the Mattermost WebSocket.
        chat_heartbeat_timeout: Silence on the Mattermost WebSocket (pings unanswered) after
            which it counts as dead.
        graceful_timeout: Shutdown: how long running work may take to finish.
        flush_timeout: Shutdown: how long the last mapping-file write may take.
    """

    connect_timeout: PositiveFloat = 10.0
    request_timeout: PositiveFloat = 30.0
    agent_heartbeat_timeout: PositiveFloat = 30.0
    chat_ping_delay: PositiveFloat = 30.0
    chat_heartbeat_timeout: PositiveFloat = 60.0
    graceful_timeout: PositiveFloat = 10.0
    flush_timeout: PositiveFloat = 5.0


class RetryPolicies(_Config, frozen=True, kw_only=True):
    """Backoff for reconnecting and for restarting failed tasks.

    Attributes:
        mattermost: Reconnecting to Mattermost (forever: the bridge is useless without it).
        opencode: Reconnecting to an OpenCode server (forever, per server).
        restart: Restarting a thread's failed streaming task; gives up after 5 attempts.
    """

    mattermost: RetryPolicy = RetryPolicy(max_delay=60.0, jitter=0.1)
    opencode: RetryPolicy = RetryPolicy(max_delay=30.0, jitter=0.1)
    restart: RetryPolicy = RetryPolicy(max_delay=30.0, max_attempts=5)


def _default_mapping_file() -> Path:
    return default_mapping_path(Path.home())


class Settings(_Config, frozen=True, kw_only=True):
    """Everything ``mmthreads run`` is configured with (see :func:`load_settings`)."""

    mattermost: MattermostSettings = MattermostSettings()
    opencode: OpenCodeSettings = OpenCodeSettings()
    #: The thread<->session mapping file.
    mapping_file: Path = msgspec.field(default_factory=_default_mapping_file)
    log_level: LogLevel = "INFO"
    stream: StreamSettings = StreamSettings()
    sessions: SessionSettings = SessionSettings()
    files: FileSettings = FileSettings()
    flood: FloodSettings = FloodSettings()
    controls: ControlSettings = ControlSettings()
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicies = RetryPolicies()


def load_settings(
    *, env: Mapping[str, str], config_path: Path | None, flags: Mapping[str, object]
) -> Settings:
    """Build the settings from flags, the TOML file, the environment and the defaults.

    Args:
        env: The environment (``os.environ``); ``HOME`` locates the default mapping file.
        config_path: The ``--config`` TOML file, or None.
        flags: Command-line values by :data:`FLAGS` name; None values count as not given.

    Returns:
        The validated settings: URLs normalised, owners de-duplicated, the mapping file's path
        resolved.

    Raises:
        ConfigError: One line naming what to fix.
        ValueError: If ``flags`` has a name outside :data:`FLAGS` (a bug in the caller).
    """
    layers = [env_layer(env)]
    if config_path is not None:
        layers.append(file_layer(config_path))
    layers.append(flag_layer(flags))
    # The three retry tables share one Struct whose defaults differ from ours: start from ours,
    # so that `[retry.restart] max_attempts = 10` changes that key only.
    merged: dict[str, Any] = {"retry": msgspec.to_builtins(RetryPolicies())}
    origin: dict[str, str] = {}
    for layer in layers:
        # Each layer alone first, so a wrong value is blamed on the layer that set it.
        convert(layer.data, Settings, origin=layer.origin, strict=layer.strict, source=layer.name)
        merge(merged, layer.data)
        origin.update(layer.origin)
    settings = convert(merged, Settings, origin=origin, strict=False, source="settings")
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return _finish(settings, origin, home)


def _finish(settings: Settings, origin: dict[str, str], home: Path) -> Settings:
    """Check what msgspec cannot (required values, URLs, owners) and normalise."""
    mm, oc = settings.mattermost, settings.opencode
    if not mm.url:
        raise ConfigError(
            "MATTERMOST_URL is not set: set it to your Mattermost server's address, "
            "e.g. https://chat.example.com"
        )
    url = _normalise_url(
        mm.url,
        origin["mattermost.url"],
        hint="give the server's address only, and the token in MATTERMOST_TOKEN",
        example="https://chat.example.com",
    ).removesuffix("/api/v4")
    if not mm.token:
        raise ConfigError(
            "MATTERMOST_TOKEN is not set: create a bot account and put its access token in "
            "MATTERMOST_TOKEN"
        )
    ids = tuple(dict.fromkeys(mm.owner_user_ids))
    for user_id in ids:
        if not _USER_ID.fullmatch(user_id):
            label = origin.get("mattermost.owner_user_ids", "owner_user_ids")
            raise ConfigError(
                f"{label}: {user_id!r} is not a Mattermost user id (26 lowercase letters and "
                "digits); give usernames in MATTERMOST_OWNER_USERNAME"
            )
    names = tuple(dict.fromkeys(name.lstrip("@").lower() for name in mm.owner_usernames))
    for name in names:
        if not _USERNAME.fullmatch(name):
            label = origin.get("mattermost.owner_usernames", "owner_usernames")
            raise ConfigError(f"{label}: {name!r} is not a Mattermost username")
    if not ids and not names:
        raise ConfigError(
            "no owner is configured: set MATTERMOST_OWNER_USER_ID (or MATTERMOST_OWNER_USERNAME) "
            "to the Mattermost user allowed to drive sessions"
        )
    if not oc.urls:
        raise ConfigError(
            f"{origin.get('opencode.urls', 'opencode.urls')} names no OpenCode server: "
            f"give at least one URL, e.g. {DEFAULT_OPENCODE_URL}"
        )
    label = origin.get("opencode.urls", "opencode.urls")
    hint = "give the server's address only, and credentials in OPENCODE_SERVER_USERNAME/_PASSWORD"
    urls = tuple(
        dict.fromkeys(
            _normalise_url(u, label, hint=hint, example=DEFAULT_OPENCODE_URL) for u in oc.urls
        )
    )
    mapping = settings.mapping_file
    if "mapping_file" not in origin:
        mapping = default_mapping_path(home)
    elif mapping.parts[:1] == ("~",):
        # The same home as the default location: HOME as given, not the process's.
        mapping = home.joinpath(*mapping.parts[1:])
    return msgspec.structs.replace(
        settings,
        mattermost=msgspec.structs.replace(mm, url=url, owner_user_ids=ids, owner_usernames=names),
        opencode=msgspec.structs.replace(oc, urls=urls),
        mapping_file=mapping,
    )


def _normalise_url(value: str, label: str, *, hint: str, example: str) -> str:
    """``value`` as ``scheme://host[:port][/path]`` without a trailing slash, or ConfigError.

    Args:
        value: The URL as configured.
        label: Where it was configured (variable, flag or file key), for the message.
        hint: Where credentials go instead, should the URL carry some.
        example: A valid URL to show in the message.
    """
    try:
        parts = urlsplit(value.strip())
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        parts = None
    if parts is not None and ("@" in parts.netloc or parts.query or parts.fragment):
        # Credentials in the URL (user:password@, ?access_token=): never repeat it, not even here.
        raise ConfigError(f"{label} must not contain credentials or a query: {hint}")
    try:
        valid = (
            parts is not None
            and parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)  # .port raises on a malformed port
        )
    except ValueError:
        valid = False
    if parts is None or not valid:
        raise ConfigError(
            f"{label} is not a valid URL: {value!r}; expected http(s)://host[:port], e.g. {example}"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
