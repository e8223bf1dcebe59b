"""The thread ↔ session mapping file, version 1: types, codec, merge and the in-memory index.

The format is the one the original TypeScript plugin wrote (camelCase names, ``version: 1``), so
both tools read each other's files.  Every field mmthreads adds has a default and is left out of
the file while it has it.  This module is pure; reading and writing is ``mmthreads.mapping_store``.

Decoding reads the envelope in one typed call (entries as ``msgspec.Raw``), then decodes the
entries in batches, one C-level call per entry; a batch that fails is redone entry by entry to drop
each invalid entry with a warning naming it and the field.  Unknown keys are ignored, not refused
(house style 13 says refuse): the plugin and other mmthreads releases share the file, and refusing
an entry over a key we do not know would detach a live thread.  ``endedAt`` on an entry that is
not ``ended`` is kept: ``status`` rules.
"""

from __future__ import annotations

import collections
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec

from mmthreads.core.states import ThreadState
from mmthreads.errors import MappingConflictError, MappingCorruptError, MappingVersionError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Sequence

__all__ = [
    "MAPPING_VERSION",
    "DecodedFile",
    "MappingIndex",
    "MappingWarning",
    "MergeResult",
    "ThreadMapping",
    "decode_file",
    "encode_chunks",
    "encode_file",
    "iso_timestamp",
    "merge",
]

#: The only file version this module reads and writes.
MAPPING_VERSION: Final = 1

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_Instant = Annotated[datetime, msgspec.Meta(tz=True)]
_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)


class ThreadMapping(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True, gc=False
):
    """One session's thread, its fields in the order of the plugin's files.

    Timestamps are the ISO-8601 strings found in the file (validated on load), so a file
    round-trips unchanged; mmthreads writes ``toISOString()`` form (see ``iso_timestamp``).
    """

    # gc=False: only strings, None and an enum member inside, so never part of a reference cycle;
    # untracked objects are 16 bytes smaller and keep a 100k-entry load out of the collector.
    session_id: _NonEmpty
    thread_root_post_id: _NonEmpty
    short_id: Annotated[str, msgspec.Meta(min_length=6, max_length=10)]
    mattermost_user_id: _NonEmpty
    dm_channel_id: _NonEmpty
    project_name: _NonEmpty
    directory: _NonEmpty
    session_title: str | None = None
    status: ThreadState
    created_at: str
    last_activity_at: str
    ended_at: str | None = None
    # --- additions of mmthreads (absent from the plugin's files) ---
    #: Base URL of the OpenCode server the session lives on ("" = the only/default server).
    opencode_server: str = ""
    #: Model chosen for the session as "providerID/modelID" ("" = the server's default).
    model: str = ""
    #: Text of the last prompt sent from the thread (for the repeat reaction).
    last_prompt: str = ""


class MappingWarning(msgspec.Struct, frozen=True, kw_only=True):
    """Why an entry was dropped.

    Attributes:
        entry: Position in the file's ``mappings`` array, when known.
        session_id: The entry's ``sessionId``, when readable.
        path: msgspec's path, rooted at the file (``$.mappings[3].createdAt``).
        message: msgspec's message (ending with that path), or why a duplicate was dropped.
    """

    entry: int | None
    session_id: str | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"entry {self.entry}" if self.entry is not None else "an entry"
        who = f" (sessionId {self.session_id!r})" if self.session_id is not None else ""
        return f"mapping {where}{who} dropped: {self.message}"


class DecodedFile(msgspec.Struct, frozen=True, kw_only=True):
    """What ``decode_file`` found: the valid entries, in file order, and why others were dropped."""

    mappings: list[ThreadMapping]
    warnings: list[MappingWarning]
    last_modified: str | None


class MergeResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of ``merge``.

    Attributes:
        mappings: What to write: disk order, then the entries only we have.
        adopted: Entries taken from disk (new to us or newer there), for the caller's index.
        warnings: Disk entries dropped for contradicting ours (a moved or shared thread).
    """

    mappings: list[ThreadMapping]
    adopted: list[ThreadMapping]
    warnings: list[MappingWarning]


# --- decoding ----------------------------------------------------------------------------------


class _Envelope(msgspec.Struct, rename="camel"):
    version: Any = None
    last_modified: Any = None
    mappings: list[msgspec.Raw] | None = None


class _Head(msgspec.Struct):
    version: Any = None


class _Times(msgspec.Struct, rename="camel", gc=False):
    created_at: _Instant
    last_activity_at: _Instant
    ended_at: _Instant | None = None


class _Probe(msgspec.Struct, rename="camel"):
    session_id: Any = None


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_HEAD_DECODER: Final = msgspec.json.Decoder(_Head)
_ENTRY_DECODER: Final = msgspec.json.Decoder(ThreadMapping)
_TIMES_DECODER: Final = msgspec.json.Decoder(_Times)
_PROBE_DECODER: Final = msgspec.json.Decoder(_Probe)
_ENCODER: Final = msgspec.json.Encoder(order="deterministic")
_BAD: Final = (msgspec.DecodeError, RecursionError)  # ValidationError is a DecodeError
#: Entries decoded per batch (see ``decode_file``).
_DECODE_CHUNK: Final = 1024


def decode_file(data: bytes, *, source: str = "<mapping file>") -> DecodedFile:
    """Decode a version-1 mapping file, dropping invalid entries.

    Args:
        data: The file's bytes.
        source: How error messages name the file (usually its path).

    Returns:
        The valid entries in file order, a warning per dropped entry, and ``lastModified``.

    Raises:
        MappingCorruptError: Not JSON, not an object, or no ``mappings`` list.
        MappingVersionError: The file declares a version newer than 1.
    """
    try:
        envelope = _ENVELOPE_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        # A newer version may have any shape: name it by its version rather than call it corrupt.
        _check_version(_version_of(data), source)
        raise MappingCorruptError(source, str(exc)) from None
    except _BAD as exc:
        raise MappingCorruptError(source, str(exc)) from None
    _check_version(envelope.version, source)
    if envelope.mappings is None:
        raise MappingCorruptError(source, "Object missing required field `mappings`")
    # Entries are decoded in batches, each by one C-level map() over the raw entries, and their
    # repeated strings are shared right away: the copies freed by one batch are reused by the
    # next.  Decoding the whole file in one call is no faster, and leaves every freed copy as a
    # hole in the allocator's pools (about 35 MB of RSS for 100k entries).  Timestamps stay
    # strings; a second decoder just checks that they parse as instants.
    raws, kept = envelope.mappings, []
    warnings: list[MappingWarning] = []
    cache: dict[str, str] = {}
    for start in range(0, len(raws), _DECODE_CHUNK):
        batch = raws[start : start + _DECODE_CHUNK]
        try:
            chunk = list(map(_ENTRY_DECODER.decode, batch))
            _consume(map(_TIMES_DECODER.decode, batch))
        except _BAD:
            chunk = _decode_one_by_one(batch, start, warnings)
        _share_repeated(chunk, cache)
        kept += chunk
    last_modified = envelope.last_modified if isinstance(envelope.last_modified, str) else None
    return DecodedFile(mappings=kept, warnings=warnings, last_modified=last_modified)


_consume: Final = collections.deque[object](maxlen=0).extend


def _version_of(data: bytes) -> object:
    try:
        return _HEAD_DECODER.decode(data).version
    except _BAD:
        return None


def _check_version(version: object, source: str) -> None:
    if type(version) is int and version > MAPPING_VERSION:
        raise MappingVersionError(source, version)
    if type(version) is not int or version != MAPPING_VERSION:
        raise MappingCorruptError(source, f"`version` is {version!r}, expected {MAPPING_VERSION}")


def _decode_one_by_one(
    batch: list[msgspec.Raw], start: int, warnings: list[MappingWarning]
) -> list[ThreadMapping]:
    kept = []
    for entry, raw in enumerate(batch, start):
        try:
            mapping = _ENTRY_DECODER.decode(raw)
            _TIMES_DECODER.decode(raw)
        except _BAD as exc:
            warnings.append(_entry_warning(entry, raw, exc))
        else:
            kept.append(mapping)
    return kept


def _entry_warning(entry: int, raw: msgspec.Raw, exc: Exception) -> MappingWarning:
    # msgspec names the path from the entry's root (or omits it at the root); re-root it at the
    # file, so the message reads as a whole-file decode would have put it.
    message, sep, at = str(exc).rpartition(" - at `$")
    if not sep:
        message, at = str(exc), "`"
    path = f"$.mappings[{entry}]{at[:-1]}"
    try:
        session_id = _PROBE_DECODER.decode(raw).session_id
    except _BAD:
        session_id = None
    return MappingWarning(
        entry=entry,
        session_id=session_id if isinstance(session_id, str) else None,
        path=path,
        message=f"{message} - at `{path}`",
    )


def _share_repeated(mappings: list[ThreadMapping], cache: dict[str, str]) -> None:
    # The decoder makes a new string per value, yet users, DM channels, projects and directories
    # repeat across thousands of entries: one shared copy of each saves about a third of the
    # memory.  The structs are fresh from the decoder, so setting their frozen fields is safe.
    share = cache.setdefault
    put = msgspec.structs.force_setattr
    for m in mappings:
        put(m, "mattermost_user_id", share(m.mattermost_user_id, m.mattermost_user_id))
        put(m, "dm_channel_id", share(m.dm_channel_id, m.dm_channel_id))
        put(m, "project_name", share(m.project_name, m.project_name))
        put(m, "directory", share(m.directory, m.directory))
        if m.opencode_server:
            put(m, "opencode_server", share(m.opencode_server, m.opencode_server))
        if m.model:
            put(m, "model", share(m.model, m.model))
        if m.ended_at is not None and m.ended_at == m.last_activity_at:
            put(m, "ended_at", m.last_activity_at)


# --- encoding ----------------------------------------------------------------------------------

# Entries per encoded chunk: small buffers are reused by the allocator, while whole-file ones
# (two of ~58 MB for 100k entries) are freshly mapped and page-faulted on every save.
_CHUNK: Final = 256
# format([[entry, …]]) puts each entry where it sits in the file (braces at 4 spaces, fields at 6);
# these are the lengths of the wrapper's first and last lines.
_WRAP_OPEN: Final = len(b"[\n  [\n")
_WRAP_CLOSE: Final = len(b"\n  ]\n]")


def encode_chunks(
    mappings: Sequence[ThreadMapping], last_modified: str
) -> Iterator[bytes | memoryview]:
    """Encode a version-1 file piece by piece, for writing without one big buffer.

    Joined, the pieces are ``msgspec.json.format(..., indent=2)`` of the whole file plus a final
    newline: deterministic, fields in the plugin's order, defaults left out.

    Args:
        mappings: The entries, written in this order.
        last_modified: The file's ``lastModified`` (see ``iso_timestamp``).

    Yields:
        Consecutive pieces of the file.
    """
    items = mappings if isinstance(mappings, list | tuple) else list(mappings)
    head = b'{\n  "version": 1,\n  "lastModified": ' + _ENCODER.encode(last_modified)
    if not items:
        yield head + b',\n  "mappings": []\n}\n'
        return
    yield head + b',\n  "mappings": [\n'
    for start in range(0, len(items), _CHUNK):
        pretty = msgspec.json.format(_ENCODER.encode((items[start : start + _CHUNK],)), indent=2)
        if start:
            yield b",\n"
        yield memoryview(pretty)[_WRAP_OPEN:-_WRAP_CLOSE]
    yield b"\n  ]\n}\n"


def encode_file(mappings: Sequence[ThreadMapping], last_modified: str) -> bytes:
    """Encode a version-1 file in one piece: the joined ``encode_chunks``."""
    return b"".join(encode_chunks(mappings, last_modified))


def iso_timestamp(when: datetime | float) -> str:
    """Format an instant as JavaScript's ``Date.toISOString()`` does: UTC, milliseconds, ``Z``.

    Args:
        when: An aware datetime or seconds since the epoch, from the caller (no clock here).

    Returns:
        For example ``2026-01-15T14:30:00.000Z`` (milliseconds truncated, as a JS ``Date``).

    Raises:
        ValueError: ``when`` is a naive datetime, whose instant is unknown.
    """
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"naive datetime {when!r}: pass an aware one (e.g. tzinfo=UTC)")
        moment = when.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(when, UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


def _instant(stamp: str) -> datetime:
    # Decoded entries hold valid stamps; one built in memory might not, and then it loses.
    try:
        return msgspec.convert(stamp, _Instant)
    except msgspec.ValidationError:
        return _EARLIEST


def _newer(candidate: ThreadMapping, current: ThreadMapping) -> bool:
    """Whether ``candidate`` was active strictly later than ``current`` (instants, not strings)."""
    if candidate.last_activity_at == current.last_activity_at:
        return False
    return _instant(candidate.last_activity_at) > _instant(current.last_activity_at)


def _dropped(mapping: ThreadMapping, field: str, message: str) -> MappingWarning:
    return MappingWarning(
        entry=None, session_id=mapping.session_id, path=f"$.mappings[*].{field}", message=message
    )


# --- merging and indexing ----------------------------------------------------------------------


def merge(ours: Iterable[ThreadMapping], disk: Iterable[ThreadMapping]) -> MergeResult:
    """Merge our mappings with what another writer left on disk.

    Per ``sessionId`` the newer ``lastActivityAt`` wins (ties: ours); entries only on disk and
    entries only ours are kept.  A disk entry that moves one of our sessions to another thread or
    gives one of our threads to another session is dropped (thread roots never change); of two
    disk entries claiming one thread the newer stays.

    Args:
        ours: Our mappings, unique by session (e.g. a ``MappingIndex``).
        disk: The entries decoded from the file on disk now.

    Returns:
        What to write, what the caller should adopt, and what was dropped.
    """
    mine = {m.session_id: m for m in ours}
    winners: dict[str, ThreadMapping] = {}
    for theirs in disk:
        current = winners.get(theirs.session_id)
        if current is None or _newer(theirs, current):
            winners[theirs.session_id] = theirs
    warnings: list[MappingWarning] = []
    for sid, m in mine.items():
        on_disk = winners.get(sid)
        if on_disk is not None and on_disk.thread_root_post_id != m.thread_root_post_id:
            warnings.append(_dropped(on_disk, "threadRootPostId", "moves our session's thread"))
        elif on_disk is not None and _newer(on_disk, m):
            continue
        winners[sid] = m
    owners: dict[str, ThreadMapping] = {}
    for m in list(winners.values()):
        rival = owners.setdefault(m.thread_root_post_id, m)
        if rival is m:
            continue
        if mine.get(m.session_id) is m or (
            mine.get(rival.session_id) is not rival and _newer(m, rival)
        ):
            owners[m.thread_root_post_id] = m
            keeper, loser = m, rival
        else:
            keeper, loser = rival, m
        del winners[loser.session_id]
        warnings.append(
            _dropped(loser, "threadRootPostId", f"thread belongs to {keeper.session_id}")
        )
    adopted = [m for sid, m in winners.items() if mine.get(sid) is not m]
    return MergeResult(mappings=list(winners.values()), adopted=adopted, warnings=warnings)


class MappingIndex:
    """The mappings in memory, with O(1) lookups by session, by thread root and by user.

    Invariants: one mapping per ``sessionId`` and one session per ``threadRootPostId``, which
    never changes for a session.  Iteration yields mappings in insertion order.
    """

    __slots__ = ("_by_root", "_by_session", "_by_user")

    def __init__(self) -> None:
        self._by_session: dict[str, ThreadMapping] = {}
        self._by_root: dict[str, ThreadMapping] = {}
        self._by_user: dict[str, dict[str, ThreadMapping]] = {}

    @classmethod
    def build(cls, mappings: Iterable[ThreadMapping]) -> tuple[MappingIndex, list[MappingWarning]]:
        """Index mappings; of two with one ``sessionId`` or thread root the newer stays.

        Args:
            mappings: For example the entries of a decoded file.

        Returns:
            The index, and a warning per entry dropped as a duplicate (ties keep the first).
        """
        items = mappings if isinstance(mappings, list) else list(mappings)
        index = cls()
        by_session = {m.session_id: m for m in items}
        by_root = {m.thread_root_post_id: m for m in items}
        if len(by_session) == len(by_root) == len(items):
            # No duplicates (the usual case): the comprehensions are the index already.
            index._by_session, index._by_root = by_session, by_root
            by_user = index._by_user
            for m in items:
                bucket = by_user.get(m.mattermost_user_id)
                if bucket is None:
                    bucket = by_user[m.mattermost_user_id] = {}
                bucket[m.session_id] = m
            return index, []
        warnings: list[MappingWarning] = []
        for m in items:
            index._admit(m, warnings)
        return index, warnings

    def _admit(self, mapping: ThreadMapping, warnings: list[MappingWarning]) -> None:
        while True:
            field = "sessionId"
            rival = self._by_session.get(mapping.session_id)
            if rival is None:
                field, rival = "threadRootPostId", self._by_root.get(mapping.thread_root_post_id)
            if rival is None:
                self.put(mapping)
                return
            if not _newer(mapping, rival):
                warnings.append(_dropped(mapping, field, f"duplicate {field}; kept the newer"))
                return
            self.remove(rival.session_id)
            warnings.append(_dropped(rival, field, f"duplicate {field}; kept the newer"))

    def get(self, session_id: str) -> ThreadMapping | None:
        """The mapping of a session, or None."""
        return self._by_session.get(session_id)

    def by_thread_root(self, post_id: str) -> ThreadMapping | None:
        """The mapping whose thread starts at ``post_id``, or None."""
        return self._by_root.get(post_id)

    def for_user(self, user_id: str) -> Collection[ThreadMapping]:
        """The mappings of one Mattermost user: a live read-only view, empty if none."""
        bucket = self._by_user.get(user_id)
        return bucket.values() if bucket is not None else ()

    def put(self, mapping: ThreadMapping) -> None:
        """Add a mapping, or replace the one with the same ``sessionId``.

        Raises:
            MappingConflictError: The session has another ``threadRootPostId`` already, or that
                thread belongs to another session; the index is left unchanged.
        """
        sid, root = mapping.session_id, mapping.thread_root_post_id
        old = self._by_session.get(sid)
        if old is not None and old.thread_root_post_id != root:
            raise MappingConflictError(
                sid,
                f"threadRootPostId is {old.thread_root_post_id!r} and never changes "
                f"(refused {root!r})",
            )
        owner = self._by_root.get(root)
        if owner is not None and owner.session_id != sid:
            raise MappingConflictError(sid, f"thread {root!r} belongs to {owner.session_id}")
        if old is not None and old.mattermost_user_id != mapping.mattermost_user_id:
            self._unfile_user(old)
        self._by_session[sid] = mapping
        self._by_root[root] = mapping
        bucket = self._by_user.get(mapping.mattermost_user_id)
        if bucket is None:
            bucket = self._by_user[mapping.mattermost_user_id] = {}
        bucket[sid] = mapping

    def remove(self, session_id: str) -> ThreadMapping:
        """Remove a session's mapping and return it.

        Raises:
            KeyError: No mapping for ``session_id``.
        """
        mapping = self._by_session.pop(session_id)
        del self._by_root[mapping.thread_root_post_id]
        self._unfile_user(mapping)
        return mapping

    def _unfile_user(self, mapping: ThreadMapping) -> None:
        bucket = self._by_user[mapping.mattermost_user_id]
        del bucket[mapping.session_id]
        if not bucket:
            del self._by_user[mapping.mattermost_user_id]

    def __len__(self) -> int:
        return len(self._by_session)

    def __iter__(self) -> Iterator[ThreadMapping]:
        return iter(self._by_session.values())

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._by_session

    def __repr__(self) -> str:
        return f"<MappingIndex sessions={len(self._by_session)} users={len(self._by_user)}>"
