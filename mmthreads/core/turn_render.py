"""The lines of a turn's answer post: reasoning, tool calls, files, todos, status and totals.

Each function here formats one piece of :class:`mmthreads.core.turn.TurnView` as Mattermost
markdown, one line (the todo list: a few lines) per call.  They are pure, take every time as an
argument (epoch milliseconds or a duration in milliseconds) and never look at the clock, so tests
can assert the exact texts.

Everything that did not come from the assistant's own text is treated as untrusted inline text:
titles, commands, todo entries and error messages are folded onto one line and escaped (or put in
a code span), so a stray ``*`` or a newline in a shell command cannot break the post's layout.
The same texts, and the reasoning, first go through :func:`~mmthreads.core.redact.redact`, so an
obvious credential in a command, a tool's title or an error message is not posted; the
assistant's answer text is shown exactly as written.

The emoji are Mattermost system emoji names (``reference/mattermost-api.md`` §6); reactions use
other names (``white_check_mark``, ``x``, ``infinity``, ``repeat``), so a status line is never
mistaken for an approval.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from mmthreads.core.agent_events import Tokens
from mmthreads.core.redact import redact
from mmthreads.core.render import code_span, escape_markdown

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from mmthreads.core.agent_events import FilePart, SessionStatus, Todo, ToolPart

__all__ = [
    "ABORTED_ERROR",
    "REASONING_TAIL",
    "WORKING",
    "completion_line",
    "error_line",
    "fence_closer",
    "file_line",
    "format_duration",
    "reasoning_line",
    "retry_line",
    "sum_tokens",
    "todo_lines",
    "tool_line",
]

#: How many characters of the latest reasoning the post shows once reasoning is done.
REASONING_TAIL: Final = 200
#: The error OpenCode reports when a run was aborted (🛑 reaction, TUI escape, API call).
ABORTED_ERROR: Final = "MessageAbortedError"
#: Shown until the turn has produced anything: Mattermost refuses empty posts.
WORKING: Final = ":hourglass_flowing_sand: _working…_"

_THINKING: Final = ":thought_balloon: _thinking…_"
# Commands, paths and error messages longer than this are cut: the post shows what happened,
# the session itself keeps the full text.
_DETAIL_LIMIT: Final = 120
_ERROR_LIMIT: Final = 300

_TOOL_EMOJI: Final = {
    "pending": ":hourglass_flowing_sand:",
    "running": ":arrows_counterclockwise:",
    "completed": ":heavy_check_mark:",
    "error": ":no_entry:",
}
# The input field that says best what a built-in tool call does, shown in a code span.
_KEY_INPUT: Final = {
    "bash": ("command",),
    "read": ("filePath", "path"),
    "write": ("filePath", "path"),
    "edit": ("filePath", "path"),
    "multiedit": ("filePath", "path"),
    "patch": ("filePath", "path"),
    "list": ("path",),
    "glob": ("pattern",),
    "grep": ("pattern",),
    "webfetch": ("url",),
}
_TODO_DONE: Final = "completed"
_TODO_ACTIVE: Final = "in_progress"
_TODO_CANCELLED: Final = "cancelled"

# A CommonMark fence line: up to 3 spaces, 3+ backticks or tildes, then the info string.
_FENCE_LINE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$", re.MULTILINE)

_SECOND_MS: Final = 1000
_MINUTE_MS: Final = 60 * _SECOND_MS
_HOUR_MS: Final = 60 * _MINUTE_MS


def format_duration(ms: int) -> str:
    """Format a duration: ``3ms``, ``12.0s``, ``2m 5s``, ``1h 2m``.

    Integer arithmetic only, so the rounding is exact (half up) and the texts are stable.

    Args:
        ms: The duration in milliseconds; negative values (clock skew) count as zero.

    Returns:
        Milliseconds below a second (most tool calls), tenths of a second below a minute,
        whole seconds below an hour, minutes beyond.
    """
    ms = max(ms, 0)
    if ms < _SECOND_MS:
        return f"{ms}ms"
    if ms < _MINUTE_MS - 50:
        tenths = (ms + 50) // 100
        return f"{tenths // 10}.{tenths % 10}s"
    if ms < _HOUR_MS - 500:
        seconds = (ms + 500) // _SECOND_MS
        return f"{seconds // 60}m {seconds % 60}s"
    minutes = (ms + _MINUTE_MS // 2) // _MINUTE_MS
    return f"{minutes // 60}h {minutes % 60}m"


def _shorten(text: str, limit: int) -> str:
    """Redact ``text``, fold it onto one line and cut it to ``limit`` characters, ending with ``…``.

    Redaction comes first: a cut could leave too little of a secret for its pattern to match.
    """
    one_line = " ".join(redact(text).split())
    if len(one_line) <= limit:
        return one_line
    return one_line[: limit - 1].rstrip() + "…"


def reasoning_line(text: str, *, streaming: bool) -> str:
    """The compact form of the model's reasoning.

    While reasoning streams the post only says that the model is thinking: the words change
    faster than one edit per second could follow, and they are not the answer. Once done, the
    last :data:`REASONING_TAIL` characters are shown as a one-line italic quote.

    Args:
        text: The latest reasoning part's text.
        streaming: Whether that part is still being written.

    Returns:
        ``:thought_balloon: _thinking…_`` or ``> :thought_balloon: _…tail_`` (obvious secrets
        redacted); "" for no text.
    """
    if streaming:
        return _THINKING
    folded = " ".join(redact(text).split())
    if not folded:
        return ""
    if len(folded) > REASONING_TAIL:
        tail = folded[-REASONING_TAIL:]
        # Start at a word boundary when there is one near the cut, so no half word leads.
        space = tail.find(" ")
        if 0 <= space < REASONING_TAIL // 4:
            tail = tail[space + 1 :]
        folded = "…" + tail
    return f"> :thought_balloon: _{escape_markdown(folded)}_"


def _tool_detail(part: ToolPart) -> str:
    """What the call did, in a few words: its key input in a code span, else its title."""
    for key in _KEY_INPUT.get(part.tool, ()):
        value = part.input.get(key)
        if isinstance(value, str) and value.strip():
            return code_span(_shorten(value, _DETAIL_LIMIT))
    if part.title.strip():
        return escape_markdown(_shorten(part.title, _DETAIL_LIMIT))
    description = part.input.get("description")
    if isinstance(description, str) and description.strip():
        return escape_markdown(_shorten(description, _DETAIL_LIMIT))
    return ""


def tool_line(part: ToolPart, *, waiting: str = "") -> str:
    """One line for a tool call: state emoji, tool name, what it did, and how long it took.

    Args:
        part: The call's latest snapshot.
        waiting: What the call waits for (``approval``, ``your answer``), or "".

    Returns:
        e.g. ``:heavy_check_mark: **bash** `echo hi` (0.4s)``; an error adds its message.
    """
    line = f"{_TOOL_EMOJI.get(part.status, ':grey_question:')} **{escape_markdown(part.tool)}**"
    detail = _tool_detail(part)
    if detail:
        line += f" {detail}"
    finished = part.status in ("completed", "error")
    if finished and part.start_ms is not None and part.end_ms is not None:
        line += f" ({format_duration(part.end_ms - part.start_ms)})"
    if part.status == "error" and part.error.strip():
        line += f": {escape_markdown(_shorten(part.error, _ERROR_LIMIT))}"
    if waiting and not finished:
        line += f" · _waiting for {waiting}_"
    return line


def file_line(part: FilePart) -> str:
    """One line for a file the assistant produced (the runtime uploads the file itself).

    Args:
        part: The file part.

    Returns:
        e.g. ``:paperclip: report.pdf (application/pdf)``.
    """
    name = escape_markdown(_shorten(part.filename, _DETAIL_LIMIT)) if part.filename else "file"
    mime = f" ({escape_markdown(part.mime)})" if part.mime else ""
    return f":paperclip: {name}{mime}"


def todo_lines(todos: Sequence[Todo]) -> str:
    """The session's todo list as a task list, with a count of what is done.

    Args:
        todos: The whole list, as the last ``todo.updated`` gave it.

    Returns:
        A ``**Todo**`` heading line, then one ``- [ ]``/``- [x]`` line per entry; "" if empty.
    """
    if not todos:
        return ""
    done = sum(todo.status == _TODO_DONE for todo in todos)
    lines = [f"**Todo** ({done}/{len(todos)} done)"]
    for todo in todos:
        content = escape_markdown(_shorten(todo.content, _DETAIL_LIMIT)) or "…"
        if todo.status == _TODO_DONE:
            lines.append(f"- [x] {content}")
        elif todo.status == _TODO_ACTIVE:
            lines.append(f"- [ ] {content} _(in progress)_")
        elif todo.status == _TODO_CANCELLED:
            lines.append(f"- [ ] ~~{content}~~ _(cancelled)_")
        else:
            lines.append(f"- [ ] {content}")
    return "\n".join(lines)


def retry_line(status: SessionStatus) -> str:
    """The transient line shown while OpenCode retries a failed model request.

    Args:
        status: The ``session.status`` of type ``retry``.

    Returns:
        e.g. ``:warning: Model request failed; retry 2: stub forced error 503``.
    """
    why = f": {escape_markdown(_shorten(status.message, _ERROR_LIMIT))}" if status.message else ""
    return f":warning: Model request failed; retry {status.attempt}{why}"


def error_line(name: str, message: str, *, elapsed_ms: int) -> str:
    """The plain line that ends a turn which failed or was stopped.

    Args:
        name: The ``session.error`` name (``APIError``, ``MessageAbortedError``, …).
        message: Its message.
        elapsed_ms: Time from the prompt to the error.

    Returns:
        ``:octagonal_sign: Stopped after 2.5s.`` for an abort, otherwise the error's name and
        message.
    """
    took = format_duration(elapsed_ms)
    if name == ABORTED_ERROR:
        return f":octagonal_sign: Stopped after {took}."
    text = escape_markdown(_shorten(message, _ERROR_LIMIT)) if message.strip() else ""
    label = escape_markdown(name) or "Error"
    return f":no_entry: **{label}** after {took}" + (f": {text}" if text else "")


def completion_line(*, elapsed_ms: int, cost: float, tokens: Tokens) -> str:
    """The line that ends a turn which completed: elapsed time, cost and tokens.

    Args:
        elapsed_ms: Time from the prompt to the session going idle.
        cost: The turn's cost in dollars, as OpenCode computed it.
        tokens: The turn's token counts.

    Returns:
        e.g. ``:checkered_flag: **Done** in 1.6s · $0.0000 · tokens: 126 in, 21 out, …``.
    """
    return (
        f":checkered_flag: **Done** in {format_duration(elapsed_ms)} · ${cost:.4f} · tokens: "
        f"{tokens.input} in, {tokens.output} out, {tokens.reasoning} reasoning, "
        f"{tokens.cache_read} cache read, {tokens.cache_write} cache write"
    )


def sum_tokens(counts: Iterable[Tokens]) -> Tokens:
    """Add token counts up, class by class.

    Args:
        counts: The counts of some messages or steps.

    Returns:
        Their sum (all zero for none).
    """
    total = [0, 0, 0, 0, 0]
    for tokens in counts:
        parts = (
            tokens.input,
            tokens.output,
            tokens.reasoning,
            tokens.cache_read,
            tokens.cache_write,
        )
        total = [a + b for a, b in zip(total, parts, strict=True)]
    return Tokens(
        input=total[0],
        output=total[1],
        reasoning=total[2],
        cache_read=total[3],
        cache_write=total[4],
    )


def fence_closer(text: str) -> str:
    """What closes the code fence ``text`` leaves open, or "" when none is open.

    Text still streaming can stop inside a code block; without a close, everything the post
    shows below it would render as code. Fences are tracked as CommonMark does at the top level.

    Args:
        text: Markdown.

    Returns:
        A newline (unless ``text`` ends with one) and the fence that closes the open block.
    """
    open_fence = ""
    for match in _FENCE_LINE.finditer(text):
        run, rest = match.group(1), match.group(2)
        if not open_fence:
            # A backtick fence's info string cannot contain a backtick.
            if run[0] != "`" or "`" not in rest:
                open_fence = run
        elif run[0] == open_fence[0] and len(run) >= len(open_fence) and not rest.strip():
            open_fence = ""
    if not open_fence:
        return ""
    return ("" if text.endswith("\n") else "\n") + open_fence
