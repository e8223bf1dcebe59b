"""Every exception mmthreads raises on purpose.

The tree::

    MmthreadsError
    ├── ConfigError              bad or missing configuration; the service refuses to start
    ├── MappingFileError         the mapping file cannot be used
    │   └── MappingVersionError  the file was written by a newer version; never overwritten
    ├── ChatError                talking to Mattermost failed
    └── AgentError               talking to OpenCode failed

This module imports nothing else from mmthreads.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ChatError",
    "ConfigError",
    "MappingFileError",
    "MappingVersionError",
    "MmthreadsError",
]


class MmthreadsError(Exception):
    """Root of every error mmthreads raises on purpose."""


class ConfigError(MmthreadsError):
    """The configuration is missing something or contradicts itself."""


class MappingFileError(MmthreadsError):
    """The mapping file cannot be read or written."""


class MappingVersionError(MappingFileError):
    """The mapping file has a version this mmthreads does not understand."""

    def __init__(self, path: str, version: object) -> None:
        super().__init__(
            f"{path}: mapping file version {version!r} is newer than this mmthreads understands "
            "(it reads version 1); upgrade mmthreads or point it at another file. "
            "The file was left untouched."
        )
        self.path = path
        self.version = version

    def __repr__(self) -> str:
        return f"MappingVersionError(path={self.path!r}, version={self.version!r})"


class ChatError(MmthreadsError):
    """A Mattermost request or connection failed."""


class AgentError(MmthreadsError):
    """An OpenCode request or connection failed."""
