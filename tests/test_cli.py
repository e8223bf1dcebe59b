"""The command line: ``mmthreads harness`` and argument errors."""

from __future__ import annotations

import io
from functools import partial
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from mmthreads.cli import main
from mmthreads.harness.faults import FaultPlan, Status
from mmthreads.harness.standalone import HarnessOptions, run_harness

if TYPE_CHECKING:
    from pathlib import Path


async def test_harness_prints_working_urls_and_tokens(tmp_path: Path) -> None:
    out = io.StringIO()
    options = HarnessOptions(opencode=True, directory=str(tmp_path))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            facts = await nursery.start(partial(run_harness, options, out=out))
            printed = out.getvalue()
            for key in ("mattermost_url", "bot_token", "user_token", "opencode_url"):
                assert facts[key] in printed
            async with httpx.AsyncClient() as client:
                me = await client.get(
                    f"{facts['mattermost_url']}/api/v4/users/me",
                    headers={"Authorization": f"Bearer {facts['bot_token']}"},
                )
                assert me.status_code == 200
                assert me.json()["id"] == facts["bot_user_id"]
                assert me.json()["is_bot"] is True
                human = await client.get(
                    f"{facts['mattermost_url']}/api/v4/users/me",
                    headers={"Authorization": f"Token {facts['user_token']}"},
                )
                assert human.json()["username"] == "alice"
                health = await client.get(f"{facts['opencode_url']}/global/health")
                assert health.json()["healthy"] is True
            nursery.cancel_scope.cancel()


async def test_harness_applies_the_fault_plan() -> None:
    plan = FaultPlan()
    plan.add("http:GET /api/v4/users/me", Status(status=503), times=1)
    options = HarnessOptions(plan=plan)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            facts = await nursery.start(partial(run_harness, options, out=io.StringIO()))
            auth = {"Authorization": f"Bearer {facts['bot_token']}"}
            url = f"{facts['mattermost_url']}/api/v4/users/me"
            async with httpx.AsyncClient() as client:
                assert (await client.get(url, headers=auth)).status_code == 503
                assert (await client.get(url, headers=auth)).status_code == 200
            nursery.cancel_scope.cancel()
    assert [r.target for r in plan.recorded()] == ["http:GET /api/v4/users/me"]


def test_harness_refuses_an_unreadable_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "plan.toml"
    bad.write_text("[[rules]]\ntarget = 3\n")
    assert main(["harness", "--plan", str(bad)]) == 2
    assert "cannot read the fault plan" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
