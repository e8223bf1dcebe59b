"""The lines of a turn hide obvious secrets: tool inputs, titles, errors, reasoning; text stays."""

from __future__ import annotations

from mmthreads.core.agent_events import ToolPart
from mmthreads.core.turn_render import error_line, reasoning_line, todo_lines, tool_line

TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"


def _bash(command: str, **changes: object) -> ToolPart:
    fields: dict[str, object] = {
        "part_id": "prt_1",
        "message_id": "msg_1",
        "tool": "bash",
        "call_id": "call_1",
        "status": "completed",
        "input": {"command": command},
        "start_ms": 0,
        "end_ms": 400,
    }
    fields.update(changes)
    return ToolPart(**fields)  # type: ignore[arg-type]


def test_a_token_in_a_command_is_redacted() -> None:
    line = tool_line(_bash(f"GITHUB_TOKEN={TOKEN} gh pr list"))
    assert line == ":heavy_check_mark: **bash** `GITHUB_TOKEN=[redacted] gh pr list` (400ms)"


def test_a_secret_is_redacted_before_the_command_is_cut() -> None:
    # The token sits where the 120-character cut falls: what is left of it must not show.
    command = "x" * 100 + " " + TOKEN
    line = tool_line(_bash(command))
    assert "ghp_" not in line
    assert "[redacted]" in line


def test_a_title_and_an_error_are_redacted() -> None:
    part = _bash(
        "",
        tool="webfetch",
        input={},
        title="GET https://bob:hunter2@example.com/x",
        status="error",
        error="401 for Authorization: Bearer abcdefghijklmnopqrstuvwxyz",
    )
    line = tool_line(part)
    assert "hunter2" not in line
    assert "abcdefghijklmnopqrstuvwxyz" not in line
    assert line.count("\\[redacted\\]") == 2


def test_reasoning_and_errors_are_redacted() -> None:
    assert TOKEN not in reasoning_line(f"I will use {TOKEN} now", streaming=False)
    line = error_line(
        "APIError", "Incorrect API key provided: sk-abcdefghijklmnopqrstuvwx", elapsed_ms=5
    )
    assert line == ":no_entry: **APIError** after 5ms: Incorrect API key provided: \\[redacted\\]"


def test_plain_commands_are_unchanged() -> None:
    line = tool_line(_bash("echo hello-from-tool"))
    assert line == ":heavy_check_mark: **bash** `echo hello-from-tool` (400ms)"
    assert todo_lines(()) == ""
