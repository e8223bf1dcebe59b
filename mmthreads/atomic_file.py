"""Writing small state files atomically: a reader sees the old content or the new, never a mix.

The mapping file streams its content and checks for concurrent writers, so it drives these
pieces itself (``mmthreads.mapping_store``); smaller files use :func:`write_atomically`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["fsync_directory", "unlink_quietly", "write_atomically"]


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same directory (mode 0600, as
    ``mkstemp`` creates it), written in full, fsynced, renamed over ``path``; then the directory
    is fsynced so the rename itself survives a power cut.  The temporary file is removed if
    anything fails.
    """
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as out:
            out.write(data)  # a buffered file writes everything (os.write may stop short)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        unlink_quietly(temp)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename in it) to disk."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: str) -> None:
    """Remove ``path`` if it can be removed; a missing file is fine."""
    with contextlib.suppress(OSError):
        os.unlink(path)
