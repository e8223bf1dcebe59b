"""Where settings come from: the environment, a TOML file and command-line flags, as layers.

Each source becomes a :class:`Layer`: a nested dict in the TOML file's shape plus, for every
dotted key it sets, *who* set it (``MATTERMOST_URL``, ``--opencode-url``, ``stream.edit_interval
in /etc/mmthreads.toml``), so that an error can name the exact variable, flag or key to fix.
``mmthreads.settings.load_settings`` validates each layer on its own (strictly for the file,
whose TOML values are typed; loosely for the environment and flags, which are strings), then
merges them, a higher layer's key replacing a lower one's.

Nothing here knows the settings' fields beyond the tables :data:`ENV_VARS` and :data:`FLAGS`;
the target type is a parameter of :func:`convert`.
"""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from mmthreads.errors import ConfigError
from mmthreads.secret import Secret

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ENV_VARS",
    "FLAGS",
    "LIST_KEYS",
    "Layer",
    "convert",
    "env_layer",
    "file_layer",
    "flag_layer",
    "merge",
    "split_list",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Environment variable -> the setting it fills (dotted TOML key). The first seven are the
#: original plugin's, so a plugin user's shell works unchanged.
ENV_VARS: Final[Mapping[str, str]] = {
    "MATTERMOST_URL": "mattermost.url",
    "MATTERMOST_TOKEN": "mattermost.token",
    "MATTERMOST_OWNER_USER_ID": "mattermost.owner_user_ids",
    "MATTERMOST_OWNER_USERNAME": "mattermost.owner_usernames",
    "OPENCODE_URL": "opencode.urls",
    "OPENCODE_SERVER_USERNAME": "opencode.username",
    "OPENCODE_SERVER_PASSWORD": "opencode.password",
    "MMTHREADS_MAPPING_FILE": "mapping_file",
    "MMTHREADS_LOG_LEVEL": "log_level",
    # The plugin's names for two knobs mmthreads shares with it.
    "OPENCODE_MM_MAX_FILE_SIZE": "files.max_size",
    "MATTERMOST_DEBUG": "log_level",
}

#: Flag (the CLI's argparse ``dest``; spelt ``--mattermost-url`` etc.) -> the setting it fills.
#: List flags may be repeated, and each value may hold several items separated by commas.
FLAGS: Final[Mapping[str, str]] = {
    "mattermost_url": "mattermost.url",
    "owner_user_id": "mattermost.owner_user_ids",
    "owner_username": "mattermost.owner_usernames",
    "opencode_url": "opencode.urls",
    "opencode_username": "opencode.username",
    "mapping_file": "mapping_file",
    "log_level": "log_level",
    "edit_interval": "stream.edit_interval",
    "queue_limit": "sessions.queue_limit",
    "adoption_window": "sessions.adoption_window",
}

#: Settings that hold a list; given as one string (env, flag) they are split.
LIST_KEYS: Final = frozenset(
    {"mattermost.owner_user_ids", "mattermost.owner_usernames", "opencode.urls"}
)

# Flags that would carry a secret, with where the secret goes instead.
_SECRET_FLAGS: Final = {
    "mattermost_token": "MATTERMOST_TOKEN",
    "opencode_password": "OPENCODE_SERVER_PASSWORD",
}
_SECRET_KEYS: Final = ("mattermost.token", "opencode.password")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_ERROR_PATH: Final = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `([^`]+)`(?: - at `\$(\S*)`)?$")


class Layer:
    """One source of settings.

    Args:
        name: The source, for messages: ``environment``, ``flags`` or the file's path.
        strict: Whether values must have their final types (the file) or may be strings that
            msgspec converts (environment, flags).

    Attributes:
        data: The settings, nested as in the TOML file.
        origin: Dotted key -> who set it (variable, flag, or ``key in file``).
    """

    def __init__(self, name: str, *, strict: bool) -> None:
        self.name = name
        self.strict = strict
        self.data: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    def set(self, key: str, value: object, origin: str) -> None:
        """Set the dotted ``key`` to ``value``, remembering who set it."""
        *parents, leaf = key.split(".")
        table = self.data
        for parent in parents:
            table = table.setdefault(parent, {})
        table[leaf] = value
        self.origin[key] = origin


def env_layer(env: Mapping[str, str]) -> Layer:
    """The settings the environment gives (:data:`ENV_VARS`); empty values count as unset."""
    layer = Layer("environment", strict=False)
    for name, key in ENV_VARS.items():
        value = env.get(name, "").strip()
        if not value:
            continue  # `export X=` means unset, as in the plugin
        if name == "MATTERMOST_DEBUG":
            # The plugin's switch; an explicit MMTHREADS_LOG_LEVEL wins over it.
            if value.lower() in _TRUE and not env.get("MMTHREADS_LOG_LEVEL", "").strip():
                layer.set(key, "DEBUG", name)
        elif key in LIST_KEYS:
            layer.set(key, split_list(value), name)
        else:
            layer.set(key, value.upper() if key == "log_level" else value, name)
    return layer


def file_layer(path: Path) -> Layer:
    """The settings in the TOML file at ``path``.

    Raises:
        ConfigError: If the file cannot be read or is not TOML.
    """
    layer = Layer(str(path), strict=True)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        layer.data = msgspec.toml.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            dotted = f"{prefix}{key}"
            layer.origin[dotted] = f"{dotted} in {path}"
            if isinstance(value, dict):
                walk(value, f"{dotted}.")

    walk(layer.data, "")
    if isinstance(layer.data.get("log_level"), str):
        layer.data["log_level"] = layer.data["log_level"].upper()
    secrets = [key for key in _SECRET_KEYS if key in layer.origin]
    if secrets and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("%s holds %s and other users may read it: chmod 600 it", path, secrets)
    return layer


def flag_layer(flags: Mapping[str, object]) -> Layer:
    """The settings given as flags (:data:`FLAGS`); None values count as not given.

    Raises:
        ConfigError: For a flag that would carry a secret.
        ValueError: For a name outside :data:`FLAGS` (a bug in the caller, not in the config).
    """
    layer = Layer("flags", strict=False)
    for name, value in flags.items():
        flag = f"--{name.replace('_', '-')}"
        if name in _SECRET_FLAGS:
            raise ConfigError(
                f"{flag} is not accepted: other users can read command lines; "
                f"put the secret in {_SECRET_FLAGS[name]} or in the config file"
            )
        if name not in FLAGS:
            raise ValueError(f"unknown settings flag {name!r}")
        if value is None:
            continue
        key = FLAGS[name]
        if key in LIST_KEYS:
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            value = [part for item in items for part in split_list(str(item))]
        elif key == "log_level" and isinstance(value, str):
            value = value.upper()
        layer.set(key, value, flag)
    return layer


def split_list(value: str) -> list[str]:
    """A list given as one string: items separated by commas and/or whitespace."""
    return [item for item in re.split(r"[,\s]+", value) if item]


def merge(into: dict[str, Any], layer: dict[str, Any]) -> None:
    """Merge ``layer`` into ``into``: tables recursively, any other value replaced."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def _dec_hook(type_: type, obj: object) -> object:
    if type_ is Secret and isinstance(obj, str):
        return Secret(obj)
    if type_ is Path and isinstance(obj, str):
        return Path(obj)
    if type_ in (Secret, Path):
        # Only the type is named: the value may be a secret.
        raise TypeError(f"Expected `str`, got `{type(obj).__name__}`")
    raise NotImplementedError


def convert(
    data: dict[str, Any], type_: type[T], *, origin: Mapping[str, str], strict: bool, source: str
) -> T:
    """Validate ``data`` as ``type_``, turning msgspec's errors into one ConfigError line.

    Args:
        data: Settings nested as in the TOML file.
        type_: The settings Struct.
        origin: Who set each dotted key, to name the variable or flag in a message.
        strict: False lets msgspec convert strings (from the environment or flags).
        source: The layer's name, for errors not tied to one key (unknown keys in a file).

    Returns:
        The Struct.

    Raises:
        ConfigError: ``unknown key `x.y``` or ``<who>: <msgspec message with its $.path>``.
    """
    try:
        return msgspec.convert(data, type_, strict=strict, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if unknown := _UNKNOWN.match(message):
            at = (unknown.group(2) or "").lstrip(".")
            key = f"{at}.{unknown.group(1)}" if at else unknown.group(1)
            raise ConfigError(
                f"{source}: unknown key `{key}`; see docs/reference/configuration.md"
            ) from None
        where = _ERROR_PATH.search(message)
        key = re.sub(r"\[\d+\]", "", where.group(1)).lstrip(".") if where else ""
        # Name the variable or flag rather than the layer when one is known.
        label = next((origin[k] for k in (key, key.rsplit(".", 1)[0]) if k in origin), source)
        raise ConfigError(f"{label}: {message}") from None
