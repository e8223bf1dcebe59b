"""What the stand-in's tools "do": outputs, titles and metadata shaped like the real tools'.

Nothing here touches the disk or runs a process.  ``bash`` understands ``echo`` and answers any
other command with one canned line; ``write`` remembers the file only to report a diff.  The
texts of rejections and errors are OpenCode's own (``permission/next.ts``, ``question``).
"""

from __future__ import annotations

import json
import os.path
import re
import shlex
from typing import TYPE_CHECKING, Any, Final

from mmthreads.harness.opencode.wire import FileDiff, QuestionInfo, Todo

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ABORTED_TOOL",
    "DENIED",
    "QUESTION_DISMISSED",
    "REJECTED",
    "always_pattern",
    "bash_output",
    "corrected",
    "new_file_diff",
    "question_output",
    "question_title",
    "todo_result",
    "wildcard_match",
    "write_result",
]

#: A reply of ``reject`` without a message: the tool fails and the loop stops.
REJECTED: Final = "The user rejected permission to use this specific tool call."
#: A rule (config or session) says ``deny``: the tool fails and the loop stops.
DENIED: Final = (
    "The user has specified a rule which prevents you from using this specific tool call. "
    "Here are some of the relevant rules {rules}"
)
#: ``POST /question/{id}/reject``: the tool fails and the loop stops.
QUESTION_DISMISSED: Final = "The user dismissed this question"
#: A tool still running when the turn is aborted.
ABORTED_TOOL: Final = "Tool execution aborted"


def corrected(message: str) -> str:
    """The tool error for ``reject`` with a ``message``: the model gets it and goes on."""
    return (
        "The user rejected permission to use this specific tool call with the following "
        f"feedback: {message}"
    )


def wildcard_match(pattern: str, value: str) -> bool:
    """OpenCode's ``Wildcard.match``: ``*`` is any run of characters, ``?`` one character."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def always_pattern(command: str) -> str:
    """The pattern an "always" reply approves for ``command``: its first word and ``*``."""
    words = command.split()
    return f"{words[0]} *" if words else "*"


def bash_output(command: str) -> str:
    """The simulated output of ``command``: ``echo X`` prints ``X``; others a canned line."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if words and words[0] == "echo":
        return " ".join(words[1:]) + "\n"
    return f"(stand-in) ran: {command}\n"


def todo_result(todos: Sequence[Todo]) -> tuple[str, str, dict[str, Any]]:
    """``todowrite``'s output (the list as indented JSON), title and metadata."""
    plain = [{"content": t.content, "status": t.status, "priority": t.priority} for t in todos]
    open_count = sum(1 for t in todos if t.status != "completed")
    return json.dumps(plain, indent=2), f"{open_count} todos", {"todos": plain, "truncated": False}


def write_result(
    directory: str, file_path: str, *, existed: bool
) -> tuple[str, str, dict[str, Any]]:
    """``write``'s absolute path, title (the path relative to the project) and metadata."""
    absolute = os.path.normpath(os.path.join(directory, file_path))
    title = os.path.relpath(absolute, directory)
    metadata = {"diagnostics": {}, "filepath": absolute, "exists": existed, "truncated": False}
    return absolute, title, metadata


def new_file_diff(relative: str, content: str) -> FileDiff:
    """The ``SnapshotFileDiff`` of a newly written file, as in the recorded trace."""
    lines = content.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    patch = (
        f"Index: {relative}\n"
        "===================================================================\n"
        f"--- {relative}\t\n+++ {relative}\t\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )
    return FileDiff(file=relative, patch=patch, additions=len(lines), deletions=0, status="added")


def question_title(questions: Sequence[QuestionInfo]) -> str:
    """The ``question`` tool's title: ``Asked 1 question``."""
    n = len(questions)
    return f"Asked {n} question{'s' if n != 1 else ''}"


def question_output(questions: Sequence[QuestionInfo], answers: Sequence[Sequence[str]]) -> str:
    """The ``question`` tool's output, which the model reads."""
    chosen = [
        ", ".join(answers[i]) if i < len(answers) and answers[i] else "Unanswered"
        for i in range(len(questions))
    ]
    formatted = ", ".join(f'"{q.question}"="{c}"' for q, c in zip(questions, chosen, strict=True))
    return (
        f"User has answered your questions: {formatted}. "
        "You can now continue with the user's answers in mind."
    )
