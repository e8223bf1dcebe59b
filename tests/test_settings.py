"""Settings: precedence of flags, file, environment and defaults; every refusal, exactly."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import msgspec
import pytest

from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import ConfigError
from mmthreads.secret import Secret
from mmthreads.settings import (
    DEFAULT_OPENCODE_URL,
    ENV_VARS,
    FLAGS,
    Settings,
    load_settings,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"
OWNER = "abcdefghijklmnopqrstuvwxyz"
OTHER = "zyxwvutsrqponmlkjihgfedcba"
TOKEN = "tok-very-secret-123"
PASSWORD = "pw-very-secret-456"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """The smallest working environment, as a plugin user has it."""
    return {
        "HOME": str(home),
        "MATTERMOST_URL": "https://chat.example.com/api/v4",
        "MATTERMOST_TOKEN": TOKEN,
        "MATTERMOST_OWNER_USER_ID": OWNER,
    }


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mmthreads.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def load(env: dict[str, str], config: Path | None = None, /, **flags: object) -> Settings:
    return load_settings(env=env, config_path=config, flags=flags)


def refusal(env: dict[str, str], config: Path | None = None, /, **flags: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(env, config, **flags)
    message = str(caught.value)
    assert "\n" not in message
    assert TOKEN not in message
    assert PASSWORD not in message
    return message


# --- the environment, as the plugin used it ----------------------------------------------------


def test_plugin_environment_alone_is_enough(env: dict[str, str], home: Path) -> None:
    settings = load(env)
    assert settings.mattermost.url == "https://chat.example.com"
    assert settings.mattermost.token == Secret(TOKEN)
    assert settings.mattermost.owner_user_ids == (OWNER,)
    assert settings.opencode.urls == (DEFAULT_OPENCODE_URL,)
    assert settings.opencode.username == "opencode"
    assert not settings.opencode.password
    assert settings.mapping_file == home / ".config" / "opencode" / "mattermost-threads.json"
    # Everything else is the Structs' defaults.
    defaults = Settings()
    assert (settings.stream, settings.sessions, settings.files) == (
        defaults.stream,
        defaults.sessions,
        defaults.files,
    )
    assert (settings.timeouts, settings.retry, settings.log_level) == (
        defaults.timeouts,
        defaults.retry,
        "INFO",
    )


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        (
            "MATTERMOST_URL",
            "https://chat.example.com/",
            "mattermost.url",
            "https://chat.example.com",
        ),
        ("MATTERMOST_URL", "http://mm:8065/api/v4/", "mattermost.url", "http://mm:8065"),
        (
            "MATTERMOST_URL",
            "https://example.com/chat",
            "mattermost.url",
            "https://example.com/chat",
        ),
        (
            "MATTERMOST_OWNER_USER_ID",
            f"{OWNER}, {OTHER},{OWNER}",
            "mattermost.owner_user_ids",
            (OWNER, OTHER),
        ),
        ("MATTERMOST_OWNER_USERNAME", "@Alice,bob", "mattermost.owner_usernames", ("alice", "bob")),
        (
            "OPENCODE_URL",
            "http://a:4096/ http://b:4096,http://a:4096",
            "opencode.urls",
            ("http://a:4096", "http://b:4096"),
        ),
        ("OPENCODE_SERVER_USERNAME", "bridge", "opencode.username", "bridge"),
        ("OPENCODE_SERVER_PASSWORD", PASSWORD, "opencode.password", Secret(PASSWORD)),
        ("MMTHREADS_MAPPING_FILE", "~/threads.json", "mapping_file", "HOME/threads.json"),
        ("MMTHREADS_LOG_LEVEL", "warning", "log_level", "WARNING"),
        ("MATTERMOST_DEBUG", "true", "log_level", "DEBUG"),
        ("MATTERMOST_DEBUG", "false", "log_level", "INFO"),
        ("OPENCODE_MM_MAX_FILE_SIZE", "2048", "files.max_size", 2048),
        ("MATTERMOST_TEAM", "ignored", "mattermost.url", "https://chat.example.com"),
    ],
)
def test_environment_variables(
    env: dict[str, str], home: Path, name: str, value: str, attribute: str, expected: object
) -> None:
    env[name] = value
    if isinstance(expected, str) and expected.startswith("HOME/"):
        expected = home / expected.removeprefix("HOME/")
    assert _get(load(env), attribute) == expected


def test_an_empty_variable_counts_as_unset(env: dict[str, str]) -> None:
    env["OPENCODE_URL"] = ""
    env["MMTHREADS_LOG_LEVEL"] = "  "
    settings = load(env)
    assert (settings.opencode.urls, settings.log_level) == ((DEFAULT_OPENCODE_URL,), "INFO")


def test_an_explicit_log_level_beats_mattermost_debug(env: dict[str, str]) -> None:
    env |= {"MATTERMOST_DEBUG": "1", "MMTHREADS_LOG_LEVEL": "error"}
    assert load(env).log_level == "ERROR"


def test_the_mapping_file_follows_the_plugin_location_rules(
    env: dict[str, str], home: Path
) -> None:
    (home / ".opencode").mkdir()
    assert load(env).mapping_file == home / ".opencode" / "mattermost-threads.json"


# --- precedence ---------------------------------------------------------------------------------

# (attribute, env, file, flag): each level names a different value.
LEVELS = [
    (
        "mattermost.url",
        ("MATTERMOST_URL", "https://env.example"),
        'mattermost.url = "https://file.example"',
        ("mattermost_url", "https://flag.example"),
    ),
    (
        "opencode.urls",
        ("OPENCODE_URL", "http://env:1"),
        'opencode.urls = ["http://file:1"]',
        ("opencode_url", ["http://flag:1"]),
    ),
    (
        "opencode.username",
        ("OPENCODE_SERVER_USERNAME", "env"),
        'opencode.username = "file"',
        ("opencode_username", "flag"),
    ),
    (
        "mattermost.owner_usernames",
        ("MATTERMOST_OWNER_USERNAME", "env"),
        'mattermost.owner_usernames = ["file"]',
        ("owner_username", ["flag"]),
    ),
    (
        "log_level",
        ("MMTHREADS_LOG_LEVEL", "DEBUG"),
        'log_level = "ERROR"',
        ("log_level", "critical"),
    ),
    (
        "mapping_file",
        ("MMTHREADS_MAPPING_FILE", "/env.json"),
        'mapping_file = "/file.json"',
        ("mapping_file", "/flag.json"),
    ),
    ("files.max_size", ("OPENCODE_MM_MAX_FILE_SIZE", "100"), "files.max_size = 200", None),
    ("stream.edit_interval", None, "stream.edit_interval = 2.5", ("edit_interval", "0.5")),
    ("sessions.queue_limit", None, "sessions.queue_limit = 5", ("queue_limit", 7)),
    ("sessions.adoption_window", None, "sessions.adoption_window = 60.0", ("adoption_window", 0)),
]
WINNERS = {
    "mattermost.url": ("https://env.example", "https://file.example", "https://flag.example"),
    "opencode.urls": (("http://env:1",), ("http://file:1",), ("http://flag:1",)),
    "opencode.username": ("env", "file", "flag"),
    "mattermost.owner_usernames": (("env",), ("file",), ("flag",)),
    "log_level": ("DEBUG", "ERROR", "CRITICAL"),
    "mapping_file": (Path("/env.json"), Path("/file.json"), Path("/flag.json")),
    "files.max_size": (100, 200, None),
    "stream.edit_interval": (None, 2.5, 0.5),
    "sessions.queue_limit": (None, 5, 7),
    "sessions.adoption_window": (None, 60.0, 0.0),
}


@pytest.mark.parametrize(("attribute", "by_env", "by_file", "by_flag"), LEVELS)
@pytest.mark.parametrize("levels", ["env", "env+file", "env+file+flag", "file+flag", "env+flag"])
def test_flags_beat_the_file_which_beats_the_environment_which_beats_defaults(
    env: dict[str, str],
    tmp_path: Path,
    attribute: str,
    by_env: tuple[str, str] | None,
    by_file: str,
    by_flag: tuple[str, object] | None,
    levels: str,
) -> None:
    used = set(levels.split("+"))
    if by_env and "env" in used:
        env[by_env[0]] = by_env[1]
    key, value = by_file.split(" = ")
    *table, leaf = key.split(".")
    config = write(tmp_path, (f"[{table[0]}]\n" if table else "") + f"{leaf} = {value}\n")
    flags = {by_flag[0]: by_flag[1]} if by_flag and "flag" in used else {}
    settings = load(env, config if "file" in used else None, **flags)
    from_env, from_file, from_flag = WINNERS[attribute]
    if flags:
        expected = from_flag
    elif "file" in used:
        expected = from_file
    elif by_env:
        expected = from_env
    else:
        expected = _get(load(env), attribute)  # the default
    assert _get(settings, attribute) == expected


def test_flag_values_of_none_are_not_given(env: dict[str, str]) -> None:
    settings = load(env, mattermost_url=None, opencode_url=None, edit_interval=None)
    assert settings.mattermost.url == "https://chat.example.com"
    assert settings.opencode.urls == (DEFAULT_OPENCODE_URL,)


def test_a_higher_list_replaces_a_lower_one(env: dict[str, str], tmp_path: Path) -> None:
    env["OPENCODE_URL"] = "http://a:1,http://b:1"
    config = write(tmp_path, '[opencode]\nurls = ["http://c:1"]\n')
    assert load(env, config).opencode.urls == ("http://c:1",)
    assert load(env, config, opencode_url=["http://d:1,http://e:1"]).opencode.urls == (
        "http://d:1",
        "http://e:1",
    )


def test_owners_by_id_and_by_name_add_up(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path, '[mattermost]\nowner_usernames = ["alice"]\n')
    settings = load(env, config)
    assert settings.mattermost.owner_user_ids == (OWNER,)
    assert settings.mattermost.owner_usernames == ("alice",)


def test_the_sample_file_in_the_docs_loads(env: dict[str, str], tmp_path: Path) -> None:
    sample = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert sample is not None
    settings = load(env, write(tmp_path, sample.group(1)))
    assert settings.opencode.urls == ("http://127.0.0.1:4096", "http://build-box:4096")
    assert settings.retry.restart == RetryPolicy(max_delay=30.0, max_attempts=10)
    assert settings.log_level == "INFO"


def test_every_option_is_documented() -> None:
    text = DOCS.read_text()
    for name in ENV_VARS:
        assert f"`{name}" in text, name
    for flag in FLAGS:
        assert f"`--{flag.replace('_', '-')}`" in text, flag
    for group, fields in msgspec.structs.asdict(Settings()).items():
        if isinstance(fields, msgspec.Struct):
            for field in msgspec.structs.fields(fields):
                assert f"`{group}.{field.name}`" in text or f"`{field.name}`" in text, field.name
        else:
            assert f"`{group}`" in text, group


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_never_show(env: dict[str, str]) -> None:
    env["OPENCODE_SERVER_PASSWORD"] = PASSWORD
    settings = load(env)
    for text in (repr(settings), str(settings), f"{settings.mattermost.token}"):
        assert TOKEN not in text
        assert PASSWORD not in text
    assert repr(settings.mattermost.token) == "Secret('**********')"
    assert str(settings.opencode.password) == "**********"
    assert settings.mattermost.token.reveal() == TOKEN
    assert settings.opencode.password.reveal() == PASSWORD


def test_secret_value_semantics() -> None:
    assert not Secret()
    assert repr(Secret()) == "Secret('')"
    assert str(Secret()) == ""
    assert Secret("a") == Secret("a") != Secret("b")
    assert hash(Secret("a")) == hash(Secret("a"))
    assert Secret("a") != "a"


def test_a_secret_in_the_file_beats_the_environment(env: dict[str, str], tmp_path: Path) -> None:
    config = write(tmp_path, f'[mattermost]\ntoken = "{PASSWORD}"\n')
    assert load(env, config).mattermost.token.reveal() == PASSWORD


@pytest.mark.parametrize(
    ("flag", "variable"),
    [("mattermost_token", "MATTERMOST_TOKEN"), ("opencode_password", "OPENCODE_SERVER_PASSWORD")],
)
def test_secrets_are_refused_as_flags(env: dict[str, str], flag: str, variable: str) -> None:
    assert refusal(env, **{flag: TOKEN}) == (
        f"--{flag.replace('_', '-')} is not accepted: other users can read command lines; "
        f"put the secret in {variable} or in the config file"
    )


def test_a_readable_file_with_a_secret_is_warned_about(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write(tmp_path, f'[mattermost]\ntoken = "{TOKEN}"\n')
    config.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="mmthreads.settings_sources"):
        load(env, config)
    assert [r.getMessage() for r in caplog.records] == [
        f"{config} holds ['mattermost.token'] and other users may read it: chmod 600 it"
    ]
    assert TOKEN not in caplog.text


def test_a_unknown_flag_is_a_bug_of_the_caller(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unknown settings flag 'colour'"):
        load(env, colour="red")


# --- refusals -----------------------------------------------------------------------------------

MISSING_URL = (
    "MATTERMOST_URL is not set: set it to your Mattermost server's address, "
    "e.g. https://chat.example.com"
)
MISSING_TOKEN = (
    "MATTERMOST_TOKEN is not set: create a bot account and put its access token in MATTERMOST_TOKEN"
)
NO_OWNER = (
    "no owner is configured: set MATTERMOST_OWNER_USER_ID (or MATTERMOST_OWNER_USERNAME) "
    "to the Mattermost user allowed to drive sessions"
)
URL_HINT = "expected http(s)://host[:port], e.g."


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"MATTERMOST_URL": None}, MISSING_URL),
        ({"MATTERMOST_TOKEN": None}, MISSING_TOKEN),
        ({"MATTERMOST_TOKEN": " "}, MISSING_TOKEN),
        ({"MATTERMOST_OWNER_USER_ID": None}, NO_OWNER),
        ({"MATTERMOST_OWNER_USER_ID": " , "}, NO_OWNER),
        (
            {"MATTERMOST_URL": "chat"},
            f"MATTERMOST_URL is not a valid URL: 'chat'; {URL_HINT} https://chat.example.com",
        ),
        (
            {"MATTERMOST_URL": "ftp://chat"},
            f"MATTERMOST_URL is not a valid URL: 'ftp://chat'; {URL_HINT} https://chat.example.com",
        ),
        (
            {"MATTERMOST_URL": "https://chat:99999"},
            "MATTERMOST_URL is not a valid URL: 'https://chat:99999'; "
            f"{URL_HINT} https://chat.example.com",
        ),
        (
            {"MATTERMOST_URL": "https://chat/?x=1"},
            "MATTERMOST_URL must not contain credentials or a query: "
            "give the server's address only, and the token in MATTERMOST_TOKEN",
        ),
        (
            {"MATTERMOST_URL": f"https://bot:{TOKEN}@chat"},
            "MATTERMOST_URL must not contain credentials or a query: "
            "give the server's address only, and the token in MATTERMOST_TOKEN",
        ),
        (
            {"OPENCODE_URL": "http://a:1 localhost:4096"},
            f"OPENCODE_URL is not a valid URL: 'localhost:4096'; {URL_HINT} http://127.0.0.1:4096",
        ),
        (
            {"OPENCODE_URL": f"http://opencode:{PASSWORD}@a:1:x"},
            "OPENCODE_URL must not contain credentials or a query: give the server's address "
            "only, and credentials in OPENCODE_SERVER_USERNAME/_PASSWORD",
        ),
        (
            {"MATTERMOST_OWNER_USER_ID": "alice"},
            "MATTERMOST_OWNER_USER_ID: 'alice' is not a Mattermost user id "
            "(26 lowercase letters and digits); give usernames in MATTERMOST_OWNER_USERNAME",
        ),
        (
            {"MATTERMOST_OWNER_USERNAME": "al!ce"},
            "MATTERMOST_OWNER_USERNAME: 'al!ce' is not a Mattermost username",
        ),
        (
            {"OPENCODE_MM_MAX_FILE_SIZE": "big"},
            "OPENCODE_MM_MAX_FILE_SIZE: Expected `int`, got `str` - at `$.files.max_size`",
        ),
        (
            {"OPENCODE_MM_MAX_FILE_SIZE": "0"},
            "OPENCODE_MM_MAX_FILE_SIZE: Expected `int` >= 1 - at `$.files.max_size`",
        ),
        (
            {"MMTHREADS_LOG_LEVEL": "loud"},
            "MMTHREADS_LOG_LEVEL: Invalid enum value 'LOUD' - at `$.log_level`",
        ),
    ],
)
def test_environment_refusals(
    env: dict[str, str], changes: dict[str, str | None], message: str
) -> None:
    for name, value in changes.items():
        if value is None:
            del env[name]
        else:
            env[name] = value
    assert refusal(env) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "{path}: unknown key `colour`; see docs/reference/configuration.md"),
        (
            "[stream]\ncolour = 1\n",
            "{path}: unknown key `stream.colour`; see docs/reference/configuration.md",
        ),
        (
            "[retry.opencode]\nbase = 1\n",
            "{path}: unknown key `retry.opencode.base`; see docs/reference/configuration.md",
        ),
        (
            '[stream]\nedit_interval = "1"\n',
            "stream.edit_interval in {path}: Expected `float`, got `str` - at "
            "`$.stream.edit_interval`",
        ),
        (
            "[stream]\nedit_interval = 0\n",
            "stream.edit_interval in {path}: Expected `float` > 0.0 - at `$.stream.edit_interval`",
        ),
        (
            '[mattermost]\nowner_user_ids = "x"\n',
            "mattermost.owner_user_ids in {path}: Expected `array`, got `str` - at "
            "`$.mattermost.owner_user_ids`",
        ),
        (
            "[mattermost]\ntoken = 123\n",
            "mattermost.token in {path}: Expected `str`, got `int` - at `$.mattermost.token`",
        ),
        (
            "[retry.restart]\nfactor = 0.5\n",
            "retry.restart in {path}: factor must be at least 1 - at `$.retry.restart`",
        ),
        (
            "[opencode]\nurls = []\n",
            "opencode.urls in {path} names no OpenCode server: give at least one URL, "
            "e.g. http://127.0.0.1:4096",
        ),
        (
            '[mattermost]\nurl = "chat"\n',
            f"mattermost.url in {{path}} is not a valid URL: 'chat'; {URL_HINT} "
            "https://chat.example.com",
        ),
        ("stream = = 1\n", "{path}: not valid TOML: Invalid value (at line 1, column 10)"),
    ],
)
def test_file_refusals(env: dict[str, str], tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path, text)
    assert refusal(env, config) == message.format(path=config)


def test_a_missing_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert refusal(env, missing) == (
        f"cannot read the config file {missing}: No such file or directory"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"mattermost_url": "chat"},
            f"--mattermost-url is not a valid URL: 'chat'; {URL_HINT} https://chat.example.com",
        ),
        (
            {"edit_interval": "-1"},
            "--edit-interval: Expected `float` > 0.0 - at `$.stream.edit_interval`",
        ),
        (
            {"queue_limit": "many"},
            "--queue-limit: Expected `int`, got `str` - at `$.sessions.queue_limit`",
        ),
        (
            {"owner_user_id": ["nope"]},
            "--owner-user-id: 'nope' is not a Mattermost user id "
            "(26 lowercase letters and digits); give usernames in MATTERMOST_OWNER_USERNAME",
        ),
    ],
)
def test_flag_refusals(env: dict[str, str], flags: dict[str, object], message: str) -> None:
    assert refusal(env, **flags) == message


def test_the_owner_can_come_from_the_file_or_a_flag_alone(
    env: dict[str, str], tmp_path: Path
) -> None:
    del env["MATTERMOST_OWNER_USER_ID"]
    config = write(tmp_path, '[mattermost]\nowner_usernames = ["@alice"]\n')
    assert load(env, config).mattermost.owner_usernames == ("alice",)
    assert load(env, owner_user_id=[OTHER]).mattermost.owner_user_ids == (OTHER,)


def _get(settings: Settings, attribute: str) -> object:
    value: object = settings
    for name in attribute.split("."):
        value = getattr(value, name)
    return value
