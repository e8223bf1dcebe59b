"""The policy base of the OpenCode wire shapes, and the small pieces the other shapes share."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Cache",
    "FileDiff",
    "NamedError",
    "PermissionRule",
    "Reply",
    "Todo",
    "Tokens",
    "Wire",
]


Reply = Literal["once", "always", "reject"]


def _wire_name(name: str) -> str:
    """``session_id`` -> ``sessionID``, ``status_code`` -> ``statusCode``."""
    head, *rest = name.split("_")
    out = head + "".join(word[:1].upper() + word[1:] for word in rest)
    return out[:-2] + "ID" if out.endswith("Id") else out


class Wire(msgspec.Struct, kw_only=True, omit_defaults=True, rename=_wire_name):
    """Policy for OpenCode wire objects: keyword-only, camelCase, optional keys left out."""


# -- small pieces ------------------------------------------------------------------------------


class Cache(Wire, kw_only=True):
    """Token cache counters."""

    read: int
    write: int


class Tokens(Wire, kw_only=True):
    """Token counts of a step, a message or a session (``total`` only on steps and messages)."""

    total: int | None = None
    input: int
    output: int
    reasoning: int
    cache: Cache


class NamedError(Wire, kw_only=True):
    """An OpenCode ``NamedError``: ``{name, data: {message, …}}`` (``APIError``, …)."""

    name: str
    data: dict[str, Any]


class FileDiff(Wire, kw_only=True):
    """A ``SnapshotFileDiff``: one changed file of a turn."""

    file: str | None = None
    patch: str | None = None
    additions: int
    deletions: int
    status: str | None = None


class PermissionRule(Wire, kw_only=True):
    """One permission rule: ``{permission, pattern, action}``."""

    permission: str
    pattern: str
    action: Literal["allow", "deny", "ask"]


class Todo(Wire, kw_only=True):
    """One entry of a session's todo list."""

    content: str
    status: str
    priority: str
