"""Records the stand-in keeps: instances and messages with their parts, and small helpers
(timestamps, pagination cursors, ``data:`` URLs)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import msgspec

from mmthreads.harness.opencode.wire import (
    AssistantMessage,
    Cache,
    FileDiff,
    Part,
    Project,
    Tokens,
    UserMessage,
)

__all__ = [
    "Instance",
    "MessageRecord",
    "data_url_size",
    "data_url_text",
    "decode_cursor",
    "encode_cursor",
    "iso",
    "zero_tokens",
]


def zero_tokens(*, total: int | None = None) -> Tokens:
    """Token counters at zero."""
    return Tokens(total=total, input=0, output=0, reasoning=0, cache=Cache(read=0, write=0))


def iso(ms: int) -> str:
    """Epoch milliseconds as OpenCode writes them in titles: ``2026-11-25T18:54:36.139Z``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Instance(msgspec.Struct, kw_only=True):
    """One project instance: a directory the server was asked about."""

    directory: str
    project: Project
    #: A stand-in for the git tree hash of the worktree; changes when a tool writes a file.
    snapshot: str
    #: Files the agent wrote (absolute path -> content); nothing is written to disk.
    files: dict[str, str] = msgspec.field(default_factory=dict)


class MessageRecord(msgspec.Struct, kw_only=True):
    """A message with its parts, as ``GET /session/{id}/message`` returns it."""

    info: UserMessage | AssistantMessage
    parts: list[Part] = msgspec.field(default_factory=list)
    #: Files changed by the turn this user message started (for ``summary.diffs``).
    diffs: list[FileDiff] = msgspec.field(default_factory=list)

    def put(self, part: Part) -> None:
        """Add ``part``, or replace the part with the same id."""
        for i, existing in enumerate(self.parts):
            if existing.id == part.id:
                self.parts[i] = part
                return
        self.parts.append(part)

    def to_wire(self) -> dict[str, Any]:
        """``{info, parts}``."""
        return {"info": self.info, "parts": list(self.parts)}


def encode_cursor(message_id: str, created: int) -> str:
    """A ``before`` cursor: base64 of ``{id, time}``."""
    raw = msgspec.json.encode({"id": message_id, "time": created})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The message id inside a cursor.

    Raises:
        ValueError: Not a cursor.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = msgspec.json.decode(raw)
        return str(value["id"])
    except (binascii.Error, msgspec.DecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc


def data_url_text(url: str) -> str | None:
    """The text inside a base64 ``data:`` URL, or ``None``."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    try:
        return base64.b64decode(url.split(",", 1)[1]).decode("utf-8", errors="replace")
    except binascii.Error:
        return None


def data_url_size(url: str) -> int:
    """How many bytes a ``data:`` URL holds (0 for other URLs)."""
    if not url.startswith("data:") or "," not in url:
        return 0
    head, body = url.split(",", 1)
    if head.endswith(";base64"):
        try:
            return len(base64.b64decode(body))
        except binascii.Error:
            return 0
    return len(body.encode())
