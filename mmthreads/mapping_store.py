"""Reading and writing the mapping file: where it lives, atomic saves, merging with other writers.

Everything here is synchronous file I/O; the Trio runtime calls it through ``trio.to_thread``.

Lifecycle of a ``MappingStore``:

* ``load()`` reads the file.  A missing file is an empty store.  A file that cannot be read or
  decoded is renamed aside (``mattermost-threads.json.corrupt-20260115T154500Z``), reported in the
  log and in the result, and the service starts empty.  A file of a newer version raises
  ``MappingVersionError`` and is left alone; the store remembers, and every later ``save()``
  raises too, so that file is never overwritten.
* ``save()`` first checks whether the file changed since this store last read or wrote it (device,
  inode, size and mtime): ``os.replace`` gives every atomic writer's file a new inode, so this is
  cheap and reliable for the plugin and other mmthreads processes.  If it changed, the disk
  entries are merged in (``mapping_index.merge``).  The new content goes to a temp file in the same
  directory (mode 0600), is flushed and fsynced, replaces the file with ``os.replace``, and the
  directory is fsynced so the rename itself survives a power cut.  If the file changes again while
  the temp file is written, the merge is redone; a writer sneaking in between the last check and
  the rename (microseconds) can still lose its update, as there is no lock the plugin would honour.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from mmthreads.atomic_file import fsync_directory, unlink_quietly
from mmthreads.errors import MappingCorruptError, MappingFileError, MappingVersionError
from mmthreads.mapping import decode_stream, encode_chunks, iso_timestamp
from mmthreads.mapping_index import MappingIndex, merge

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from mmthreads.mapping import DecodedFile, MappingWarning, ThreadMapping

__all__ = [
    "FILE_NAME",
    "LoadResult",
    "MappingStore",
    "SaveResult",
    "default_mapping_path",
]

logger = logging.getLogger(__name__)

#: The file's name in either default directory.
FILE_NAME: Final = "mattermost-threads.json"
#: Temp files older than this (seconds) are debris of a killed save and removed on load.
STALE_TEMP_AFTER: Final = 3600.0
# How often a save redoes its merge when the file keeps changing under it; then the last one wins.
_MAX_ATTEMPTS: Final = 3
# Warnings logged one by one; the rest are summed up in one line (all are in the result).
_LOGGED_WARNINGS: Final = 20

# (st_dev, st_ino, st_size, st_mtime_ns): what tells us someone else wrote the file.
_Signature = tuple[int, int, int, int]


def default_mapping_path(home: Path, explicit: Path | None = None) -> Path:
    """Where the mapping file lives.

    Args:
        home: The user's home directory (a parameter, so tests can use a temporary one).
        explicit: A configured path; it overrides the defaults.

    Returns:
        ``explicit`` if given; else ``~/.opencode/mattermost-threads.json`` when
        ``~/.config/opencode/`` does not exist but ``~/.opencode/`` does; else
        ``~/.config/opencode/mattermost-threads.json``.
    """
    if explicit is not None:
        return explicit.expanduser()
    primary, fallback = home / ".config" / "opencode", home / ".opencode"
    if not primary.is_dir() and fallback.is_dir():
        return fallback / FILE_NAME
    return primary / FILE_NAME


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What ``MappingStore.load`` found.

    Attributes:
        index: The valid mappings (empty if the file was missing or set aside).
        warnings: One per entry dropped (invalid or duplicate).
        backup: Where an unreadable file was moved, or None.
        problem: Why it was moved, or None.
    """

    index: MappingIndex
    warnings: tuple[MappingWarning, ...] = ()
    backup: Path | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What ``MappingStore.save`` did.

    Attributes:
        merged: Whether another writer had changed the file, so its entries were merged in.
        adopted: Disk entries (new to us, or newer there) now in the file; put them into the index.
        warnings: Disk entries dropped while merging (invalid, or contradicting ours).
        backup: Where an unreadable file found at save time was moved, or None.
        size: Bytes written.
    """

    merged: bool
    adopted: tuple[ThreadMapping, ...] = ()
    warnings: tuple[MappingWarning, ...] = ()
    backup: Path | None = None
    size: int = 0


class MappingStore:
    """The mapping file at one path; see the module docstring for the lifecycle.

    Args:
        path: The file (see ``default_mapping_path``).
        fsync: Whether saves fsync the file and its directory; only benchmarks turn it off.
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self._path = path
        self._fsync = fsync
        # What the file looked like after our last load or save; None = absent.
        self._signature: _Signature | None = None
        self._known = False
        self._refused: MappingVersionError | None = None

    @property
    def path(self) -> Path:
        """The file this store reads and writes."""
        return self._path

    @property
    def refused(self) -> bool:
        """Whether the file has a newer version, so this store never writes it."""
        return self._refused is not None

    def __repr__(self) -> str:
        return f"<MappingStore path={str(self._path)!r} refused={self.refused}>"

    def load(self, *, now: datetime | None = None) -> LoadResult:
        """Read the file into an index.

        Args:
            now: The time used to name a backup and to judge temp files stale (default: now).

        Returns:
            The mappings, the warnings, and where an unreadable file went.

        Raises:
            MappingVersionError: The file has a newer version; it is left untouched.
            MappingFileError: The file is unreadable and cannot be moved aside either.
        """
        now = now if now is not None else datetime.now(UTC)
        self._remove_stale_temps(now)
        try:
            decoded, signature = self._read()
        except FileNotFoundError:
            logger.info("No mapping file at %s yet: starting with no threads", self._path)
            self._signature, self._known = None, True
            return LoadResult(MappingIndex())
        except OSError as exc:
            return self._set_aside_on_load(f"cannot read it: {exc}", now)
        except MappingVersionError as exc:
            self._refused = exc  # the caller reports it; we only remember never to write
            raise
        except MappingCorruptError as exc:
            return self._set_aside_on_load(exc.reason, now)
        index, duplicates = MappingIndex.build(decoded.mappings)
        warnings = (*decoded.warnings, *duplicates)
        _log_warnings(self._path, warnings)
        logger.info("Loaded %d thread mappings from %s", len(index), self._path)
        self._signature, self._known, self._refused = signature, True, None
        return LoadResult(index, warnings)

    def save(self, mappings: Iterable[ThreadMapping], now: datetime | float) -> SaveResult:
        """Write the mappings atomically, merged with another writer's changes if there are any.

        Args:
            mappings: Our mappings, unique by session (e.g. the ``MappingIndex``).
            now: The file's ``lastModified`` (aware datetime or epoch seconds).

        Returns:
            Whether a merge happened, what was adopted from disk, what was dropped.

        Raises:
            MappingVersionError: The file has a newer version; it is never overwritten.
            MappingFileError: The file could not be written; the old one is intact.
        """
        if self._refused is not None:
            raise MappingVersionError(self._refused.path, self._refused.version)
        ours = list(mappings)
        stamp = iso_timestamp(now)
        try:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return self._save(ours, stamp, now)
        except OSError as exc:
            raise MappingFileError(f"{self._path}: cannot write the mapping file: {exc}") from exc

    def _save(self, ours: list[ThreadMapping], stamp: str, now: datetime | float) -> SaveResult:
        when = now if isinstance(now, datetime) else datetime.fromtimestamp(now, UTC)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            before = _stat_signature(self._path)
            result = SaveResult(merged=False)
            content = ours
            if not self._known or before != self._signature:
                # From here on, "before" is the file the merge read (None: absent or set aside).
                result, content, before = self._merge_with_disk(ours, when)
            temp, written, size = self._write_temp(content, stamp)
            if _stat_signature(self._path) != before and attempt < _MAX_ATTEMPTS:
                logger.info("%s changed while saving; merging again", self._path)
                unlink_quietly(temp)
                continue
            try:
                os.replace(temp, self._path)
            except BaseException:
                unlink_quietly(temp)
                raise
            if self._fsync:
                fsync_directory(self._path.parent)
            self._signature, self._known = written, True
            return SaveResult(
                merged=result.merged,
                adopted=result.adopted,
                warnings=result.warnings,
                backup=result.backup,
                size=size,
            )
        raise AssertionError("unreachable: the last attempt always writes")  # pragma: no cover

    def _merge_with_disk(
        self, ours: list[ThreadMapping], now: datetime
    ) -> tuple[SaveResult, list[ThreadMapping], _Signature | None]:
        try:
            decoded, signature = self._read()
        except FileNotFoundError:
            return SaveResult(merged=False), ours, None
        except OSError as exc:
            backup = self._set_aside(f"cannot read it: {exc}", now)
            return SaveResult(merged=False, backup=backup), ours, None
        except MappingVersionError as exc:
            self._refused = exc  # the caller reports it; we only remember never to write
            raise
        except MappingCorruptError as exc:
            backup = self._set_aside(exc.reason, now)
            return SaveResult(merged=False, backup=backup), ours, None
        merged = merge(ours, decoded.mappings)
        warnings = (*decoded.warnings, *merged.warnings)
        _log_warnings(self._path, warnings)
        logger.info(
            "%s was changed by another writer: merged, adopting %d entries",
            self._path,
            len(merged.adopted),
        )
        result = SaveResult(merged=True, adopted=tuple(merged.adopted), warnings=warnings)
        return result, merged.mappings, signature

    def _write_temp(self, content: list[ThreadMapping], stamp: str) -> tuple[str, _Signature, int]:
        # mkstemp creates the file 0600 (owner only) and never reuses a name.
        fd, temp = tempfile.mkstemp(
            prefix=f".{self._path.name}.", suffix=".tmp", dir=self._path.parent
        )
        try:
            with open(fd, "wb") as out:
                size = 0
                for chunk in encode_chunks(content, stamp):
                    size += out.write(chunk)
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
                # The rename keeps inode, size and mtime: this is what the file will look like.
                written = _signature(os.fstat(out.fileno()))
        except BaseException:
            unlink_quietly(temp)
            raise
        return temp, written, size

    def _read(self) -> tuple[DecodedFile, _Signature]:
        """Decode the file as it is now, and what it looked like when opened.

        Raises:
            OSError: The file cannot be opened or read (FileNotFoundError: it is missing).
            MappingCorruptError: It is not a mapping file.
            MappingVersionError: It has a newer version.
        """
        # Unbuffered: decode_stream reads a batch at a time into its own reused buffer, so the
        # 57 MB of a 100k-entry file never sit in memory at once (and are not copied twice).
        with open(self._path, "rb", buffering=0) as src:
            signature = _signature(os.fstat(src.fileno()))
            return decode_stream(src, source=str(self._path)), signature

    def _set_aside_on_load(self, reason: str, now: datetime) -> LoadResult:
        backup = self._set_aside(reason, now)
        self._signature, self._known = None, True
        return LoadResult(MappingIndex(), backup=backup, problem=reason)

    def _set_aside(self, reason: str, now: datetime) -> Path | None:
        stem = f"{self._path.name}.corrupt-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        backup = self._path.with_name(stem)
        serial = 1
        while backup.exists():
            serial += 1
            backup = self._path.with_name(f"{stem}-{serial}")
        try:
            os.rename(self._path, backup)
        except FileNotFoundError:
            return None  # gone meanwhile: nothing to keep
        except OSError as exc:
            raise MappingFileError(
                f"{self._path}: unreadable mapping file ({reason}), and it cannot be moved aside "
                f"to {backup}: {exc}"
            ) from exc
        logger.error(
            "%s: unreadable mapping file (%s); moved it to %s and starting with no threads",
            self._path,
            reason,
            backup,
        )
        return backup

    def _remove_stale_temps(self, now: datetime) -> None:
        # A save killed between mkstemp and os.replace leaves its temp file behind.  Only old
        # ones go: a young one may belong to a save running in another process right now.
        with contextlib.suppress(OSError):
            for temp in self._path.parent.glob(f".{self._path.name}.*.tmp"):
                with contextlib.suppress(OSError):
                    if now.timestamp() - temp.stat().st_mtime > STALE_TEMP_AFTER:
                        temp.unlink()
                        logger.info("Removed %s, left by an interrupted save", temp)


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _stat_signature(path: Path) -> _Signature | None:
    try:
        return _signature(os.stat(path))
    except FileNotFoundError:
        return None


def _log_warnings(path: Path, warnings: tuple[MappingWarning, ...]) -> None:
    for warning in warnings[:_LOGGED_WARNINGS]:
        logger.warning("%s: %s", path, warning)
    if len(warnings) > _LOGGED_WARNINGS:
        logger.warning(
            "%s: %d more mapping entries dropped (not logged one by one)",
            path,
            len(warnings) - _LOGGED_WARNINGS,
        )
