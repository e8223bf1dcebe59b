"""Reading an OpenAI chat-completions request: what the stub model was asked.

The shapes are those ``@ai-sdk/openai-compatible`` (bundled in ``opencode``) sends; they are read
leniently, since that client adds fields between releases.  From the request the stub works out
the scripted agent's inputs (:func:`read_turn`):

- the **prompt**: the text of the *last* ``user`` message, without the parts OpenCode made of
  attached files;
- the **attachments**: the files OpenCode passed on in that message (:func:`read_attachments`);
- **done tools**: the number of ``tool`` messages after that user message, and their contents;
  the ``question`` tool's output is reduced to the answers (see below);
- whether it is a **title request**: OpenCode asks for a session title with no ``tools``.  Its
  messages are the title system prompt, ``Generate a title for this conversation:`` and then the
  user's message, so the last user message is the prompt there too.

What OpenCode 1.18.33 sends for a ``FilePartInput`` with a ``data:`` URL (observed):

- ``text/plain``: two more text parts in the user message, ``Called the Read tool with the
  following input: {"filePath":"notes.txt"}`` and then the decoded file text, unchanged;
- an image or a PDF, when the model's ``modalities.input`` includes ``image`` / ``pdf``: an
  ``image_url`` part ``{url: "data:image/png;base64,…"}`` (no file name) or a ``file`` part
  ``{filename, file_data: "data:application/pdf;base64,…"}``;
- an image or a PDF the model does not accept: the text part ``ERROR: Cannot read "pixel.png"
  (this model does not support image input). Inform the user.`` (``pdf input`` for PDFs).

The ``question`` tool's output reads ``User has answered your questions: "<question>"="<answer>".
You can now continue with the user's answers in mind.``; the stub passes the script only the
answers (joined by ``, ``), the same value the OpenCode stand-in passes, so both servers end the
turn with the same ``You chose: <answer>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Final

import msgspec

from mmthreads.harness.script import Attachment

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ContentPart",
    "FileData",
    "FunctionDef",
    "ImageUrl",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
    "Turn",
    "decode_request",
    "message_text",
    "read_attachments",
    "read_turn",
]


class _Wire(msgspec.Struct, kw_only=True, frozen=True):
    """Policy for the client's wire types: immutable, keyword-only, unknown fields ignored."""


class ImageUrl(_Wire, frozen=True):
    """``image_url`` of an image content part."""

    url: str = ""


class FileData(_Wire, frozen=True):
    """``file`` of a file content part (PDFs and other binary files)."""

    filename: str | None = None
    file_data: str | None = None


class ContentPart(_Wire, frozen=True):
    """One part of a message's content; ``type`` is ``text``, ``image_url``, ``file``, …"""

    type: str
    text: str | None = None
    image_url: ImageUrl | None = None
    file: FileData | None = None


class ToolCallFunction(_Wire, frozen=True):
    """The function a tool call names, with its JSON-encoded arguments."""

    name: str = ""
    arguments: str = ""


class ToolCall(_Wire, frozen=True):
    """A tool call in an earlier ``assistant`` message."""

    id: str = ""
    type: str = "function"
    function: ToolCallFunction = ToolCallFunction()


class ChatMessage(_Wire, frozen=True):
    """One message of the conversation."""

    role: str
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(_Wire, frozen=True):
    """A function tool's name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, object] = msgspec.field(default_factory=dict)


class Tool(_Wire, frozen=True):
    """A tool offered to the model."""

    type: str = "function"
    function: FunctionDef | None = None


class ChatRequest(_Wire, frozen=True):
    """The body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage]
    model: str = ""
    stream: bool = False
    tools: list[Tool] | None = None

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names of the tools offered, in order."""
        return tuple(t.function.name for t in self.tools or () if t.function is not None)


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """The scripted agent's inputs, read from one request."""

    prompt: str
    attachments: tuple[Attachment, ...] = ()
    done_tools: int = 0
    tool_results: tuple[str, ...] = ()
    #: A title-generation request (no tools offered).
    is_title: bool = False


_DECODER: Final = msgspec.json.Decoder(ChatRequest)

# The two synthetic text parts OpenCode 1.18.33 adds for an attached text file.
_READ_CALL: Final = re.compile(
    r"^Called the Read tool with the following input: (\{.*\})\s*$", re.S
)
_REFUSED: Final = re.compile(
    r'^ERROR: Cannot read "([^"]*)" \(this model does not support (\w+) input\)'
)
_REFUSED_MIME: Final = {"image": "image/*", "pdf": "application/pdf"}
_DATA_URL: Final = re.compile(r"^data:([^;,]*)(;base64)?,(.*)$", re.S)
# One answer in the question tool's output: "<question>"="<answer>".
_ANSWER: Final = re.compile(r'"(?:[^"\\]|\\.)*"="((?:[^"\\]|\\.)*)"')
_QUESTION_TOOL: Final = "question"


def decode_request(body: bytes) -> ChatRequest:
    """Decode a chat-completions request body.

    Raises:
        msgspec.DecodeError: The body is not JSON or lacks ``messages``.
    """
    return _DECODER.decode(body)


def message_text(message: ChatMessage) -> str:
    """All text of a message, parts joined by newlines."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content if p.type == "text" and p.text is not None)


def _parts(message: ChatMessage) -> list[ContentPart]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [ContentPart(type="text", text=content)]
    return list(content)


def _data_url(url: str) -> tuple[str, int]:
    """The mime type and decoded size of a ``data:`` URL (size -1 when not decodable)."""
    match = _DATA_URL.match(url)
    if match is None:
        return "", -1
    mime, is_base64, data = match.groups()
    if not is_base64:
        return mime, len(data.encode())
    try:
        return mime, len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return mime, -1


def _split_user_parts(message: ChatMessage) -> tuple[list[str], list[Attachment]]:
    """Separate what the user typed from the parts OpenCode made of attached files."""
    texts: list[str] = []
    attachments: list[Attachment] = []
    parts = _parts(message)
    i = 0
    while i < len(parts):
        part = parts[i]
        i += 1
        if part.type == "text" and part.text is not None:
            call = _READ_CALL.match(part.text)
            if call is not None:
                path = _file_path(call.group(1))
                content = ""
                if i < len(parts) and parts[i].type == "text":
                    content = parts[i].text or ""
                    i += 1
                name = path.rsplit("/", 1)[-1]
                attachments.append(Attachment(name, "text/plain", len(content.encode())))
                continue
            refused = _REFUSED.match(part.text)
            if refused is not None:
                name, kind = refused.groups()
                attachments.append(Attachment(name, _REFUSED_MIME.get(kind, f"{kind}/*"), -1))
                continue
            texts.append(part.text)
        elif part.type == "image_url" and part.image_url is not None:
            mime, size = _data_url(part.image_url.url)
            attachments.append(Attachment(f"image-{len(attachments) + 1}", mime, size))
        elif part.type == "file" and part.file is not None:
            mime, size = _data_url(part.file.file_data or "")
            name = part.file.filename or f"file-{len(attachments) + 1}"
            attachments.append(Attachment(name, mime, size))
    return texts, attachments


def _file_path(arguments: str) -> str:
    try:
        decoded = json.loads(arguments)
    except ValueError:
        return ""
    path = decoded.get("filePath", "") if isinstance(decoded, dict) else ""
    return path if isinstance(path, str) else ""


def _tool_result(message: ChatMessage, tool: str | None) -> str:
    """A tool message's content; only the answers for the ``question`` tool."""
    text = message_text(message)
    if tool == _QUESTION_TOOL:
        answers = [a.replace('\\"', '"') for a in _ANSWER.findall(text)]
        if answers:
            return ", ".join(answers)
    return text


def read_attachments(message: ChatMessage) -> tuple[Attachment, ...]:
    """The files attached to a user message, as the model received them.

    Text files come back with mime ``text/plain`` and the size of their text in UTF-8; files the
    model could not take come back with mime ``image/*`` or ``application/pdf`` and size -1;
    ``image_url`` parts (named ``image-<n>``, ``n`` counting attachments from 1) and ``file``
    parts carry the mime and decoded size of their ``data:`` URL.

    Args:
        message: A ``user`` message.

    Returns:
        The attachments, in the order they appear.
    """
    return tuple(_split_user_parts(message)[1])


def read_turn(request: ChatRequest) -> Turn:
    """Work out the scripted agent's inputs from a request.

    Args:
        request: The decoded request.

    Returns:
        The prompt (the last user message's own text), its attachments, how many tool calls of
        this turn already have results and what they returned, and whether this is a title
        request.
    """
    last_user = None
    for index in range(len(request.messages) - 1, -1, -1):
        if request.messages[index].role == "user":
            last_user = index
            break
    is_title = not request.tools
    if last_user is None:
        return Turn(prompt="", is_title=is_title)
    texts, attachments = _split_user_parts(request.messages[last_user])
    after = request.messages[last_user + 1 :]
    names = {call.id: call.function.name for m in after for call in m.tool_calls or ()}
    results = tuple(
        _tool_result(m, names.get(m.tool_call_id or "")) for m in after if m.role == "tool"
    )
    return Turn(
        prompt="\n".join(texts),
        attachments=tuple(attachments),
        done_tools=len(results),
        tool_results=results,
        is_title=is_title,
    )
