"""Rebuilding an interrupted answer from OpenCode's history: ``turn_from_history``, pure.

The history is decoded from ``GET /session/{id}/message`` JSON exactly as the adapter does it.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from mmthreads.core.agent_events import Tokens
from mmthreads.core.turn_render import completion_line
from mmthreads.runtime.recovery import INTERRUPTED, turn_from_history, turn_props
from mmthreads.runtime.session_runner import TurnKey
from mmthreads.wire.opencode_normalise import HistoryMessage, decode_part, to_message_updated
from mmthreads.wire.opencode_resources import MessageWithParts

SESSION: Final = "ses_recover01"
T0: Final = 1_768_000_000_000
TOKENS: Final = {"input": 42, "output": 7, "reasoning": 0, "cache": {"read": 0, "write": 0}}


def user(message_id: str, created: int, text: str) -> dict[str, Any]:
    return {
        "info": {
            "id": message_id,
            "sessionID": SESSION,
            "role": "user",
            "time": {"created": created},
            "agent": "build",
            "model": {"providerID": "stub", "modelID": "stub-model"},
        },
        "parts": [
            {
                "id": f"prt_{message_id}",
                "sessionID": SESSION,
                "messageID": message_id,
                "type": "text",
                "text": text,
            }
        ],
    }


def assistant(
    message_id: str,
    created: int,
    text: str,
    *,
    completed: int | None = None,
    finish: str | None = None,
    parent: str = "",
) -> dict[str, Any]:
    time: dict[str, int] = {"created": created}
    if completed is not None:
        time["completed"] = completed
    info: dict[str, Any] = {
        "id": message_id,
        "sessionID": SESSION,
        "role": "assistant",
        "parentID": parent,
        "modelID": "stub-model",
        "providerID": "stub",
        "mode": "build",
        "agent": "build",
        "path": {"cwd": "/p", "root": "/p"},
        "cost": 0,
        "tokens": TOKENS,
        "time": time,
    }
    if finish is not None:
        info["finish"] = finish
    return {
        "info": info,
        "parts": [
            {
                "id": f"prt_{message_id}_a",
                "sessionID": SESSION,
                "messageID": message_id,
                "type": "text",
                "text": text,
            }
        ],
    }


def decode(entries: list[dict[str, Any]]) -> list[HistoryMessage]:
    """The adapter's decoding of ``GET /session/{id}/message`` (``OpenCodeClient.messages``)."""
    raw = msgspec.json.encode(entries)
    history: list[HistoryMessage] = []
    for entry in msgspec.json.decode(raw, type=list[MessageWithParts]):
        info = to_message_updated(entry.info, server="http://127.0.0.1:1", directory="/p")
        assert info is not None
        parts = tuple(decode_part(part)[1] for part in entry.parts)
        history.append(HistoryMessage(info=info, parts=parts))
    return history


def earlier_turn() -> list[dict[str, Any]]:
    return [
        user("msg_a1", T0 - 5000, "hello"),
        assistant("msg_a2", T0 - 4900, "an older answer", completed=T0 - 4000, finish="stop"),
    ]


def test_a_completed_turn_is_rebuilt_finished_with_its_completion_line() -> None:
    ticks = "tick " * 40
    history = decode(
        [
            *earlier_turn(),
            user("msg_b1", T0 + 10, "SLOW 40"),
            assistant("msg_b2", T0 + 20, ticks, completed=T0 + 2500, finish="stop"),
        ]
    )
    view = turn_from_history(history, T0)
    assert view.is_finished
    assert view.finished_ms == T0 + 2500
    assert view.text_only() == ticks
    assert "an older answer" not in view.markdown()
    posts = view.render(16383)
    done = completion_line(elapsed_ms=2500, cost=0.0, tokens=Tokens(input=42, output=7))
    assert posts == [f"{ticks}\n\n{done}"]


def test_a_turn_ended_without_finish_is_marked_interrupted() -> None:
    history = decode(
        [
            *earlier_turn(),
            user("msg_b1", T0 + 10, "SLOW 40"),
            assistant("msg_b2", T0 + 20, "tick tick "),
        ]
    )
    view = turn_from_history(history, T0)
    assert view.is_finished
    markdown = view.markdown()
    assert markdown.startswith("tick tick")
    assert f"**{INTERRUPTED}**" in markdown
    assert ":checkered_flag:" not in markdown


def test_a_running_turn_stays_running() -> None:
    history = decode([user("msg_b1", T0 + 10, "SLOW 40"), assistant("msg_b2", T0 + 20, "tick ")])
    view = turn_from_history(history, T0, running=True)
    assert not view.is_finished
    assert view.text_only() == "tick "


def test_tool_steps_belong_to_the_turn_and_only_the_last_finish_ends_it() -> None:
    history = decode(
        [
            user("msg_b1", T0 + 10, "USE_TOOLS"),
            assistant("msg_b2", T0 + 20, "step one", completed=T0 + 30, finish="tool-calls"),
            assistant("msg_b3", T0 + 40, "step two", completed=T0 + 90, finish="stop"),
        ]
    )
    view = turn_from_history(history, T0)
    assert view.finished_ms == T0 + 90
    assert view.text_only() == "step one\n\nstep two"
    unfinished = turn_from_history(history[:2], T0, running=True)
    assert not unfinished.is_finished


def test_a_history_without_the_prompt_gives_an_empty_running_view() -> None:
    view = turn_from_history(decode(earlier_turn()), T0)
    assert not view.is_finished
    assert view.text_only() == ""
    assert turn_from_history([], T0).text_only() == ""


def test_turn_props_name_the_turn_and_mark_the_final_render() -> None:
    key = TurnKey(prompt_post_id="post1", started_ms=T0)
    assert turn_props(key, 0, final=False) == {
        "mmthreads_turn_prompt_post_id": "post1",
        "mmthreads_turn_started_ms": str(T0),
        "mmthreads_turn_part": "0",
    }
    assert turn_props(key, 1, final=True)["mmthreads_turn_final"] == "true"
