"""``mmthreads demo``: the scripted morning, checked as the person would read it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from mmthreads.cli import main
from mmthreads.core.render import PROMPT_REFUSED, SESSION_ENDED, THREAD_NOT_RECOGNIZED
from mmthreads.demo import play, run_demo

if TYPE_CHECKING:
    import pytest


def _dm_texts() -> tuple[list[str], dict[str, list[str]]]:
    dm = play(io.StringIO())
    roots = [f"{line.author}: {line.text}" for _, line in dm.roots]
    threads = {
        line.text.splitlines()[0]: [f"{r.author}: {r.text}" for r in dm.replies.get(pid, [])]
        for pid, line in dm.roots
    }
    return roots, threads


def test_each_session_thread_gets_exactly_its_own_prompts() -> None:
    _, threads = _dm_texts()
    shop = next(v for k, v in threads.items() if "shop-api" in k)
    docs = next(v for k, v in threads.items() if "docs-site" in k)
    assert [t for t in shop if t.startswith("you:")] == [
        "you: Run the unit tests and fix what fails",
        "you: Also add a regression test",
    ]
    assert [t for t in docs if t.startswith("you:")] == [
        "you: Update the install guide for Python 3.12",
        "you: One more thing",
    ]


def test_a_disconnect_queues_and_the_reconnect_delivers() -> None:
    _, threads = _dm_texts()
    shop = next(v for k, v in threads.items() if "shop-api" in k)
    lost = next(i for i, t in enumerate(shop) if "Lost the connection" in t)
    queued = shop.index("you: Also add a regression test")
    restored = next(i for i, t in enumerate(shop) if "restored; 1 queued prompt delivered" in t)
    assert lost < queued < restored
    assert sum("Lost the connection" in t for t in shop) == 1


def test_refusals_use_the_spec_texts_where_the_spec_says() -> None:
    roots, threads = _dm_texts()
    assert roots.count(f"bot: {PROMPT_REFUSED}") == 1
    listing = next(v for k, v in threads.items() if k.startswith("**Active sessions**"))
    assert listing == ["you: thanks, which one is the API?", f"bot: {THREAD_NOT_RECOGNIZED}"]
    docs = next(v for k, v in threads.items() if "docs-site" in k)
    assert docs[-1] == f"bot: {SESSION_ENDED}"
    assert any(t.startswith("bot: **Session ended** (deleted)") for t in docs)


def test_demo_prints_the_dm_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "ACTIVE --> DISCONNECTED: agent_lost" in text
    assert "**mmthreads status**" in text
    assert main(["demo"]) == 0
    assert "prompt 'Also add a regression test' sent to session" in capsys.readouterr().out
