"""The scripted agent: what a turn does, decided deterministically from the prompt.

Both the OpenCode stand-in (which plays the whole agent loop itself) and the stub model (which a
real ``opencode serve`` calls) read the same script, so one scenario gives the same turns against
either server.  A prompt steers its turn with upper-case directives anywhere in its text:

==================  =============================================================================
directive           the turn
==================  =============================================================================
(none)              reasoning, then text: ``Hello from the stub model! You said: <prompt>``
``USE_TOOLS``       ``todowrite`` (two todos), then ``bash`` ``echo hello-from-tool`` (asks
                    permission when bash is "ask"), then ``Finished: tools ran OK.``
``ASK_QUESTION``    the ``question`` tool with two options; then ``You chose: <answer>``
``RUN_BASH <cmd>``  ``bash`` with the rest of the line as the command; then ``Ran: <cmd>``
``WRITE_FILE <p>``  ``write`` ``<p>`` with a short content; then ``File written.``
``SLOW <n>``        ``n`` text chunks ``tick `` (a long turn, to abort)
``LONG <n>``        a text of about ``n`` characters in paragraphs with a fenced code block
``ECHO_FILES``      text listing the attached files: ``Received <name> (<mime>, <n> bytes)``
``SEND_FILE <name>`` ``Here is <name>.`` and, from the stand-in only, a ``file`` part ``<name>``
                    (``text/plain``, :func:`sent_file_content`; a model cannot make one)
``FAIL_400``        the provider answers 400 (a non-retryable ``APIError``)
``FAIL_503``        the provider answers 503 (retried by the agent until aborted)
==================  =============================================================================

The script is pure: ``plan_step(prompt, done_tools, attachments)`` returns the next step of the
loop given how many tool calls already completed in this turn.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

__all__ = [
    "Attachment",
    "CallTool",
    "Fail",
    "Reply",
    "Step",
    "chunk_text",
    "long_text",
    "plan_step",
    "sent_file_content",
    "tool_calls_in",
]

#: Seconds between streamed chunks (the recorded stub used 50 ms).
CHUNK_DELAY: Final = 0.05

_WORD: Final = re.compile(r"\S+\s*|\s+")


class Attachment(msgspec.Struct, frozen=True):
    """A file that came with the prompt."""

    filename: str
    mime: str
    size: int


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """The model answers with text (and optional reasoning); the turn ends."""

    text: str
    reasoning: str = ""
    #: How many text chunks to stream with a delay (``SLOW``); 0: stream word by word.
    slow_chunks: int = 0
    #: A file the agent adds to its answer (``SEND_FILE``; played by the stand-in only).
    file_name: str = ""


class CallTool(msgspec.Struct, frozen=True, kw_only=True):
    """The model calls a tool; the loop continues after the tool's result."""

    tool: str
    args: dict[str, object]
    reasoning: str = ""


class Fail(msgspec.Struct, frozen=True, kw_only=True):
    """The provider answers with an HTTP error."""

    status: int
    message: str


Step = Reply | CallTool | Fail

_QUESTION_ARGS: Final[dict[str, object]] = {
    "questions": [
        {
            "question": "Which colour should the button be?",
            "header": "Colour",
            "options": [
                {"label": "Red", "description": "A warm red"},
                {"label": "Blue", "description": "A calm blue"},
            ],
        }
    ]
}

_TODOS: Final[list[dict[str, str]]] = [
    {"content": "say hello", "status": "in_progress", "priority": "high"},
    {"content": "run echo", "status": "pending", "priority": "low"},
]


def _argument(prompt: str, directive: str) -> str:
    """The rest of the line after ``directive`` (stripped)."""
    match = re.search(re.escape(directive) + r"[ \t]+([^\n]*)", prompt)
    return match.group(1).strip() if match else ""


def _number(prompt: str, directive: str, default: int) -> int:
    match = re.search(re.escape(directive) + r"\s+(\d+)", prompt)
    return int(match.group(1)) if match else default


def tool_calls_in(prompt: str) -> list[CallTool]:
    """The tool calls the prompt's turn makes, in order."""
    if "USE_TOOLS" in prompt:
        return [
            CallTool(tool="todowrite", args={"todos": _TODOS}),
            CallTool(
                tool="bash",
                args={"command": "echo hello-from-tool", "description": "Echo a greeting"},
            ),
        ]
    if "ASK_QUESTION" in prompt:
        return [CallTool(tool="question", args=_QUESTION_ARGS)]
    if "RUN_BASH" in prompt:
        command = _argument(prompt, "RUN_BASH") or "echo hi"
        return [CallTool(tool="bash", args={"command": command, "description": "Run a command"})]
    if "WRITE_FILE" in prompt:
        path = _argument(prompt, "WRITE_FILE") or "notes.txt"
        return [
            CallTool(tool="write", args={"filePath": path, "content": "written by the agent\n"})
        ]
    return []


def long_text(size: int) -> str:
    """A deterministic markdown text of about ``size`` characters with code fences."""
    paragraphs: list[str] = []
    total = 0
    n = 0
    while total < size:
        n += 1
        if n % 4 == 0:
            block = f"```python\ndef step_{n}():\n    return {n}\n```"
        else:
            block = f"Paragraph {n}: " + " ".join(f"word{n}-{i}" for i in range(12)) + "."
        paragraphs.append(block)
        total += len(block) + 2
    return "\n\n".join(paragraphs)


def plan_step(
    prompt: str,
    done_tools: int,
    attachments: tuple[Attachment, ...] = (),
    tool_results: tuple[str, ...] = (),
) -> Step:
    """The next step of the turn for ``prompt``.

    Args:
        prompt: The text of the user's prompt.
        done_tools: How many tool calls of this turn already have results.
        attachments: Files attached to the prompt.
        tool_results: The outputs of the completed tool calls, in order.

    Returns:
        The step the model takes now.
    """
    if "FAIL_400" in prompt:
        return Fail(status=400, message="stub forced error 400")
    if "FAIL_503" in prompt:
        return Fail(status=503, message="stub forced error 503")
    calls = tool_calls_in(prompt)
    if done_tools < len(calls):
        return calls[done_tools]
    if "USE_TOOLS" in prompt:
        return Reply(reasoning="All tools done.", text="Finished: tools ran OK.")
    if "ASK_QUESTION" in prompt:
        answer = tool_results[-1] if tool_results else ""
        return Reply(text=f"You chose: {answer.strip()}")
    if "RUN_BASH" in prompt:
        return Reply(text=f"Ran: {calls[0].args['command']}")
    if "WRITE_FILE" in prompt:
        return Reply(text="File written.")
    if "SLOW" in prompt:
        n = _number(prompt, "SLOW", 20)
        return Reply(text="tick " * n, slow_chunks=n)
    if "LONG" in prompt:
        return Reply(text=long_text(_number(prompt, "LONG", 20000)))
    if "SEND_FILE" in prompt:
        name = _argument(prompt, "SEND_FILE") or "report.txt"
        return Reply(text=f"Here is {name}.", file_name=name)
    if "ECHO_FILES" in prompt:
        lines = [f"Received {a.filename} ({a.mime}, {a.size} bytes)" for a in attachments]
        return Reply(text="\n".join(lines) or "Received no files")
    return Reply(
        reasoning="Thinking about the greeting.",
        text=f"Hello from the stub model! You said: {prompt}",
    )


def sent_file_content(name: str) -> bytes:
    """What the file of ``SEND_FILE <name>`` holds."""
    return f"contents of {name}\n".encode()


def chunk_text(text: str, slow_chunks: int = 0) -> list[str]:
    """Split a reply into the pieces a model streams: words with their trailing space."""
    if slow_chunks:
        return ["tick "] * slow_chunks
    return _WORD.findall(text)
