"""``mmthreads run`` refuses to start without credentials; ``check-config`` reports each check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from mmthreads.cli import main
from tests.e2e.conftest import WATCHDOG

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import Loopback

_OWNER_ID = "a" * 26


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment without any of the bridge's variables."""
    for name in (
        "MATTERMOST_URL",
        "MATTERMOST_TOKEN",
        "MATTERMOST_OWNER_USER_ID",
        "MATTERMOST_OWNER_USERNAME",
        "OPENCODE_URL",
        "OPENCODE_SERVER_PASSWORD",
        "MMTHREADS_MAPPING_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def test_run_without_token_exits_2_with_one_line(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--mattermost-url", "http://127.0.0.1:9", "--owner-user-id", _OWNER_ID])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "MATTERMOST_TOKEN is not set" in err


def test_run_without_owner_exits_2_with_one_line(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("MATTERMOST_TOKEN", "secret-token")
    code = main(["run", "--mattermost-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "no owner is configured" in err
    assert "secret-token" not in err


def test_run_refuses_a_token_flag(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--mattermost-token", "secret-token"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "secret-token" not in err


async def test_check_config_reports_every_check(
    loopback: Loopback, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("MATTERMOST_URL", loopback.mm.url)
    clean_env.setenv("MATTERMOST_TOKEN", loopback.bot.token)
    clean_env.setenv("MATTERMOST_OWNER_USER_ID", loopback.owner.id)
    clean_env.setenv("OPENCODE_URL", loopback.oc.url)
    with trio.fail_after(WATCHDOG):
        code = await trio.to_thread.run_sync(main, ["check-config"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split(": ")[0] for line in lines] == [
        "\N{CHECK MARK} bot login",
        f"\N{CHECK MARK} owner {loopback.owner.id}",
        f"\N{CHECK MARK} DM with {loopback.owner.id}",
        f"\N{CHECK MARK} OpenCode {loopback.oc.url}",
    ]


async def test_check_config_fails_on_a_bad_token(
    loopback: Loopback, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("MATTERMOST_URL", loopback.mm.url)
    clean_env.setenv("MATTERMOST_TOKEN", "not-a-token")
    clean_env.setenv("MATTERMOST_OWNER_USER_ID", loopback.owner.id)
    clean_env.setenv("OPENCODE_URL", loopback.oc.url)
    with trio.fail_after(WATCHDOG):
        code = await trio.to_thread.run_sync(main, ["check-config"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("\N{BALLOT X} bot login: ")
    assert "not-a-token" not in out
