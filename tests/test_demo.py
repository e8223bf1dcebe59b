"""``mmthreads demo``: the harness and the real bridge, checked as the person reads the DM."""

from __future__ import annotations

import io

import httpx
import pytest
import trio

from mmthreads.cli import main
from mmthreads.core.render import PROMPT_REFUSED, PROMPT_REFUSED_HEADING, SESSION_ENDED
from mmthreads.demo import PROMPT_A, PROMPT_B, DemoResult, ShownPost, play_demo, render_dm
from mmthreads.errors import MmthreadsError

#: The demo runs on the real clock against real sockets; it takes about a second.
DEMO_WATCHDOG = 20.0


@pytest.fixture(scope="module")
def played() -> DemoResult:
    """The demo, played once for the whole module."""
    return trio.run(play_demo, io.StringIO())


def _thread(result: DemoResult, project: str) -> list[ShownPost]:
    root = next(r for r in result.roots if f"in **{project}**" in r.message.splitlines()[0])
    return list(root.replies)


def _texts(posts: list[ShownPost], author: str) -> list[str]:
    return [p.message for p in posts if p.author == author]


def test_each_thread_holds_its_own_prompt_and_answer(played: DemoResult) -> None:
    shop, docs = _thread(played, "shop-api"), _thread(played, "docs-site")
    assert _texts(shop, "you") == [PROMPT_A]
    assert _texts(docs, "you") == [PROMPT_B, "One more thing"]
    answer_a = next(m for m in _texts(shop, "mmthreads") if ":checkered_flag: **Done**" in m)
    assert "Finished: tools ran OK." in answer_a.split("\n\n")
    card = next(m for m in _texts(shop, "mmthreads") if m.startswith(":lock:"))
    assert card.endswith(":white_check_mark: **Approved once** by @alice.")
    answer_b = next(m for m in _texts(docs, "mmthreads") if ":checkered_flag: **Done**" in m)
    assert f"Hello from the stub model! You said: {PROMPT_B}" in answer_b.split("\n\n")
    assert not any(PROMPT_B in m for m in _texts(shop, "mmthreads"))
    assert not any("tools ran OK" in m for m in _texts(docs, "mmthreads"))


def test_prompts_are_acknowledged_and_the_card_approved(played: DemoResult) -> None:
    shop = _thread(played, "shop-api")
    prompt = next(p for p in shop if p.author == "you")
    assert prompt.reactions == (":white_check_mark: (mmthreads)",)
    assert any(":white_check_mark: (you)" in p.reactions for p in shop)


def test_main_dm_answers_commands_and_refuses_the_prompt_once(played: DemoResult) -> None:
    main_dm = [(r.author, r.message) for r in played.roots if r.author == "you" or not r.replies]
    assert ("you", "!sessions") in main_dm
    assert [m for _, m in main_dm].count(PROMPT_REFUSED) == 1
    assert played.text.count(PROMPT_REFUSED_HEADING) == 1
    assert any(m.startswith("**Active sessions** (2)") for _, m in main_dm)
    assert any(m.startswith("**mmthreads status**") for _, m in main_dm)
    assert all(not r.replies for r in played.roots if r.author == "you")


def test_the_deleted_session_ends_its_thread(played: DemoResult) -> None:
    docs = _thread(played, "docs-site")
    assert any(p.message.startswith("**Session ended** (deleted)") for p in docs)
    assert docs[-1] == ShownPost("mmthreads", SESSION_ENDED)
    assert not any(p.message.startswith("**Session ended**") for p in _thread(played, "shop-api"))


def test_the_printout_is_the_dm_with_threads_indented(played: DemoResult) -> None:
    assert played.text == render_dm(played.roots)
    assert "    │ you: " + PROMPT_B in played.text
    assert "\nyou: please fix the failing tests\n" in played.text
    assert "{" not in played.text.replace("{}", "")  # no raw JSON in the output


def test_render_dm_shows_reactions_after_the_last_line() -> None:
    root = ShownPost("mmthreads", "one\ntwo", replies=(ShownPost("you", "hi", (":x: (you)",)),))
    assert render_dm((root,)) == "mmthreads: one\n           two\n    │ you: hi   [:x: (you)]\n\n"


async def test_keep_running_leaves_the_emulator_up_until_released() -> None:
    out = io.StringIO()
    seen: list[int] = []

    async def hold() -> None:
        # The emulator still answers while the demo is held.
        url = next(line for line in out.getvalue().splitlines() if "Mattermost emulator:" in line)
        base = url.split()[2]
        async with httpx.AsyncClient() as client:
            seen.append((await client.get(f"{base}/api/v4/system/ping")).status_code)

    with trio.fail_after(DEMO_WATCHDOG):
        await play_demo(out, hold=hold)
    assert seen == [200]
    text = out.getvalue()
    assert "token" in text
    assert "curl -H 'Authorization: Bearer " in text


def test_cli_demo_exits_zero_and_prints_the_dm(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    assert "The DM with @mmthreads" in captured.out
    assert captured.out.count(PROMPT_REFUSED_HEADING) == 1
    assert "Hello from the stub model! You said: " + PROMPT_B in captured.out
    assert "INFO" not in captured.out


async def test_a_stuck_scenario_stops_cleanly_with_one_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("mmthreads.demo.DEMO_TIMEOUT", 0.05)
    out = io.StringIO()
    with trio.fail_after(DEMO_WATCHDOG), pytest.raises(MmthreadsError, match="did not finish"):
        await play_demo(out)
    assert "The DM with @mmthreads" in out.getvalue()
