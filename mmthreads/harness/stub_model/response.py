"""Writing the stub model's answers: streamed chunks, plain completions and error bodies.

Pure code: a :class:`~mmthreads.harness.script.Step` goes in, bytes come out.  The server only
sleeps between frames and moves the bytes.

A streamed answer is a list of :class:`Frame`\\ s, each an SSE ``data:`` line holding a
``chat.completion.chunk`` (OpenAI's format, which ``@ai-sdk/openai-compatible`` reads):

1. ``{role: "assistant", content: ""}``;
2. the reasoning, if any, as one ``reasoning_content`` delta;
3. either the text as ``content`` deltas (the pieces of
   :func:`~mmthreads.harness.script.chunk_text`, each after ``chunk_delay``), or one tool call:
   ``tool_calls: [{index: 0, id, type: "function", function: {name, arguments: ""}}]`` followed
   by fragments of the JSON arguments;
4. an empty delta with ``finish_reason`` ``"stop"`` or ``"tool_calls"``;
5. a usage chunk: ``choices: []`` and ``usage: {prompt_tokens, completion_tokens, total_tokens}``;
6. ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Final

import msgspec

from mmthreads.harness.script import CallTool, Fail, Reply, chunk_text

__all__ = [
    "ARGUMENT_FRAGMENT",
    "DONE",
    "Frame",
    "Usage",
    "completion_body",
    "error_body",
    "stream_frames",
    "title_for",
    "usage_for",
]

#: Characters of tool-call arguments per streamed fragment.
ARGUMENT_FRAGMENT: Final = 24

#: The SSE frame that ends a stream.
DONE: Final = b"data: [DONE]\n\n"

_TITLE_WORDS: Final = 6
_TITLE_CHARS: Final = 50

_ENCODER: Final = msgspec.json.Encoder()


class Frame(msgspec.Struct, frozen=True):
    """One SSE frame, sent after waiting ``delay`` seconds."""

    data: bytes
    delay: float = 0.0


class Usage(msgspec.Struct, frozen=True):
    """Token counts reported for an answer (about four characters per token)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def usage_for(prompt_chars: int, step: Reply | CallTool) -> Usage:
    """Deterministic token counts for an answer to a prompt of ``prompt_chars`` characters."""
    if isinstance(step, Reply):
        output = step.reasoning + step.text
    else:
        output = step.reasoning + step.tool + json.dumps(step.args)
    prompt = max(1, (prompt_chars + 3) // 4)
    completion = _tokens(output)
    return Usage(prompt, completion, prompt + completion)


def title_for(prompt: str) -> str:
    """A short title made of the prompt's first words (``Stub title`` for an empty prompt)."""
    words = prompt.split()[:_TITLE_WORDS]
    title = " ".join(words)[:_TITLE_CHARS].strip()
    return title or "Stub title"


def _sse(payload: object) -> bytes:
    return b"data: " + _ENCODER.encode(payload) + b"\n\n"


def _fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_frames(
    step: Reply | CallTool,
    *,
    completion_id: str,
    call_id: str,
    model: str,
    created: int,
    usage: Usage,
    chunk_delay: float,
) -> list[Frame]:
    """The SSE frames of a streamed answer (see the module docstring for their order).

    Args:
        step: The answer.
        completion_id: The ``id`` of every chunk.
        call_id: The id of the tool call, if ``step`` is one.
        model: The ``model`` echoed in every chunk.
        created: The ``created`` Unix time of every chunk.
        usage: The token counts of the usage chunk.
        chunk_delay: Seconds to wait before each text piece.

    Returns:
        The frames, ending with ``data: [DONE]``.
    """

    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }
        )

    frames = [Frame(chunk({"role": "assistant", "content": ""}))]
    if step.reasoning:
        frames.append(Frame(chunk({"reasoning_content": step.reasoning})))
    if isinstance(step, Reply):
        for piece in chunk_text(step.text, step.slow_chunks):
            frames.append(Frame(chunk({"content": piece}), delay=chunk_delay))
        finish = "stop"
    else:
        opening: dict[str, object] = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": step.tool, "arguments": ""},
        }
        frames.append(Frame(chunk({"tool_calls": [opening]})))
        for fragment in _fragments(json.dumps(step.args), ARGUMENT_FRAGMENT):
            more: dict[str, object] = {"index": 0, "function": {"arguments": fragment}}
            frames.append(Frame(chunk({"tool_calls": [more]}), delay=chunk_delay))
        finish = "tool_calls"
    frames.append(Frame(chunk({}, finish)))
    frames.append(
        Frame(
            _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    )
    frames.append(Frame(DONE))
    return frames


def completion_body(
    step: Reply | CallTool,
    *,
    completion_id: str,
    call_id: str,
    model: str,
    created: int,
    usage: Usage,
) -> bytes:
    """A non-streamed ``chat.completion`` answer (same content as :func:`stream_frames`)."""
    message: dict[str, object] = {"role": "assistant", "content": None}
    if step.reasoning:
        message["reasoning_content"] = step.reasoning
    if isinstance(step, Reply):
        message["content"] = step.text
        finish = "stop"
    else:
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": step.tool, "arguments": json.dumps(step.args)},
        }
        message["tool_calls"] = [call]
        finish = "tool_calls"
    return _ENCODER.encode(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
    )


def error_body(fail: Fail) -> bytes:
    """An OpenAI-style error body: ``{error: {message, type, code}}``."""
    return _ENCODER.encode(
        {"error": {"message": fail.message, "type": "stub_error", "code": fail.status}}
    )
