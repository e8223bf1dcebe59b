"""Projects and sessions."""

from __future__ import annotations

from typing import Any

from mmthreads.harness.opencode.wire.base import (
    FileDiff,
    PermissionRule,
    Tokens,
    Wire,
)

__all__ = [
    "ModelRef",
    "Project",
    "ProjectTime",
    "Session",
    "SessionSummary",
    "SessionTime",
]


class ProjectTime(Wire, kw_only=True):
    """A project's timestamps (epoch ms)."""

    created: int
    updated: int


class Project(Wire, kw_only=True):
    """A ``Project``: one worktree the server knows."""

    id: str
    worktree: str
    vcs: str | None = None
    name: str | None = None
    time: ProjectTime
    sandboxes: list[str]


class SessionTime(Wire, kw_only=True):
    """A session's timestamps; ``archived`` is set by ``PATCH /session/{id}``."""

    created: int
    updated: int
    compacting: int | None = None
    archived: float | None = None


class ModelRef(Wire, kw_only=True):
    """The model a session uses: ``{id, providerID, variant?}`` (``id``, not ``modelID``)."""

    id: str
    provider_id: str
    variant: str | None = None


class SessionSummary(Wire, kw_only=True):
    """Change counters of a session."""

    additions: int
    deletions: int
    files: int
    diffs: list[FileDiff] | None = None


class Session(Wire, kw_only=True):
    """The ``Session`` object (reference §2.13)."""

    id: str
    slug: str
    version: str
    project_id: str
    directory: str
    path: str
    parent_id: str | None = None
    title: str
    agent: str | None = None
    model: ModelRef | None = None
    summary: SessionSummary | None = None
    cost: float
    tokens: Tokens
    time: SessionTime
    metadata: dict[str, Any] | None = None
    permission: list[PermissionRule] | None = None
