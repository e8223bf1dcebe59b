"""The thread ↔ session mapping file, version 1: types and codec.

The format is the one the original TypeScript plugin wrote (camelCase names, ``version: 1``), so
both tools read each other's files.  Every field mmthreads adds has a default and is left out of
the file while it has it.  This module is pure: it decodes bytes or a stream it is handed, and
encodes to bytes; opening, writing and renaming files is ``mmthreads.mapping_store``.  The index
and the merge live in ``mmthreads.mapping_index`` (and are re-exported here).

Decoding.  Both tools write the layout of ``JSON.stringify(file, null, 2)``, and such a file is
read in batches of a few hundred entries: each batch is cut at an entry boundary (a newline is never
inside a JSON string, so ``"\\n    },\\n    {\\n"`` can only be structure) and decoded by one typed
C-level call into ``list[ThreadMapping]``.  Strings that repeat across entries (users, channels,
projects, directories, titles) are then shared, and the timestamps are checked by one C-level
conversion per batch.  Working batch by batch keeps each batch in the CPU caches while it is
processed, and lets the next batch reuse the memory of the duplicates just dropped.  A batch with
an invalid entry is redone entry by entry, so that each invalid entry is dropped with a warning
naming it and the field.  A file in any other layout, or one whose batches are not valid JSON
together with the checked head and tail, is decoded the general way: envelope first, entries as
``msgspec.Raw``, then the same batches.

Unknown keys are ignored, not refused (house style 13 says refuse): the plugin and other
mmthreads releases share the file, and refusing an entry over a key we do not know would detach a
live thread.  ``endedAt`` on an entry that is not ``ended`` is kept: ``status`` rules.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Final, Protocol

import msgspec

from mmthreads.core.states import ThreadState
from mmthreads.errors import MappingCorruptError, MappingVersionError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from mmthreads.mapping_index import MappingIndex, MergeResult, merge

__all__ = [
    "MAPPING_VERSION",
    "DecodedFile",
    "MappingIndex",
    "MappingWarning",
    "MergeResult",
    "ReadableFile",
    "ThreadMapping",
    "decode_file",
    "decode_stream",
    "encode_chunks",
    "encode_file",
    "iso_timestamp",
    "merge",
]

#: The only file version this module reads and writes.
MAPPING_VERSION: Final = 1

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_Instant = Annotated[datetime, msgspec.Meta(tz=True)]


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


class ReadableFile(Protocol):
    """What ``decode_stream`` reads: a binary file opened for reading (or ``io.BytesIO``)."""

    def readinto(self, buffer: memoryview, /) -> int | None:
        """Read into ``buffer``; the number of bytes read, 0 at the end."""

    def seek(self, offset: int, whence: int = ..., /) -> int:
        """Move to ``offset`` (``decode_stream`` rewinds to 0 to re-read a file)."""

    def read(self, size: int = ..., /) -> bytes | None:
        """Read everything that is left."""


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
_BATCH_DECODER: Final = msgspec.json.Decoder(list[ThreadMapping])
_RAWS_DECODER: Final = msgspec.json.Decoder(list[msgspec.Raw])
_TIMES_DECODER: Final = msgspec.json.Decoder(_Times)
_PROBE_DECODER: Final = msgspec.json.Decoder(_Probe)
_STRING_DECODER: Final = msgspec.json.Decoder(str)
_ENCODER: Final = msgspec.json.Encoder(order="deterministic")
_BAD: Final = (msgspec.DecodeError, RecursionError)  # ValidationError is a DecodeError
_STAMPS: Final = list[_Instant]
_CREATED_AT: Final = attrgetter("created_at")
_LAST_ACTIVITY_AT: Final = attrgetter("last_activity_at")

#: Entries per batch when the entries come as ``msgspec.Raw`` (the general way).
_DECODE_CHUNK: Final = 1024
#: Bytes read per batch in the canonical layout (about 450 entries).  Smaller batches stay in
#: the CPU caches; at 100k entries 256 KiB loads ~7% faster than 1 MiB and ~25% faster than
#: 4 MiB.  The buffer grows if one entry is longer.
_BATCH_BYTES: Final = 1 << 18
#: Distinct titles shared at most: titles repeat in some workspaces and are all different in
#: others, where sharing them would only cost time.
_SHARED_TITLES: Final = 4096

# The canonical layout (JSON.stringify(file, null, 2); mmthreads adds a final newline).
_HEAD: Final = b'{\n  "version": 1,\n  "lastModified": "'
_HEAD_END: Final = b'",\n  "mappings": [\n    {\n'
_HEAD_LIMIT: Final = len(_HEAD) + 256  # where the end of the head must have been found
_SEPARATOR: Final = b"\n    },\n    {\n"  # between two entries
_SEPARATOR_COMMA: Final = _SEPARATOR.index(b",")
_TAIL: Final = b"\n    }\n  ]\n}"
_TAIL_BRACKET: Final = _TAIL.index(b"]")
_OPEN, _CLOSE = ord("["), ord("]")


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
    return _decode(io.BytesIO(data), source, data)


def decode_stream(stream: ReadableFile, *, source: str = "<mapping file>") -> DecodedFile:
    """Decode a version-1 mapping file from a stream, without holding all of it in memory.

    A file in the canonical layout is read a batch at a time into one reused buffer; any other
    is rewound and read whole (see the module docstring).  Results and errors are those of
    ``decode_file``.

    Args:
        stream: The file, positioned at its start (an unbuffered ``open(path, "rb",
            buffering=0)`` reads fastest).
        source: How error messages name the file (usually its path).

    Returns:
        The valid entries in file order, a warning per dropped entry, and ``lastModified``.

    Raises:
        MappingCorruptError: Not JSON, not an object, or no ``mappings`` list.
        MappingVersionError: The file declares a version newer than 1.
        OSError: Reading the stream failed.
    """
    return _decode(stream, source, None)


def _decode(stream: ReadableFile, source: str, data: bytes | None) -> DecodedFile:
    collector = _Collector()
    try:
        last_modified = _decode_canonical(stream, collector)
    except _BAD:
        last_modified = None  # cut at a false boundary, or broken: the general way decides
    if last_modified is None:
        if data is None:
            stream.seek(0)
            data = stream.read() or b""
        collector = _Collector()
        last_modified = _decode_general(data, source, collector)
    return DecodedFile(
        mappings=collector.kept, warnings=collector.warnings, last_modified=last_modified
    )


def _decode_canonical(stream: ReadableFile, collector: _Collector) -> str | None:
    """Decode a file in the canonical layout batch by batch; None if it is in another layout.

    Each batch is the text from one cut to the next, framed as a JSON array: it starts at the
    ``[`` opening ``mappings`` or at a ``[`` put in front of the text after a cut's comma, and
    ends at the next cut's comma, overwritten by ``]``.  A framed batch is valid JSON only if
    its brackets balance, so a cut inside an entry (possible only in a hand-edited file) makes a
    batch that does not decode; and when every batch decodes and the head and the tail match,
    the whole file was valid JSON with exactly these entries.

    Raises:
        msgspec.DecodeError: A batch is not valid JSON (the caller falls back).
        RecursionError: A batch nests too deeply (likewise).
    """
    buf = bytearray(max(_BATCH_BYTES, _HEAD_LIMIT))
    end, eof = _fill(stream, buf, 0)
    if not buf.startswith(_HEAD):
        return None
    head_end = buf.find(_HEAD_END, len(_HEAD), min(end, _HEAD_LIMIT))
    if head_end < 0:
        return None
    last_modified = _STRING_DECODER.decode(b'"' + buf[len(_HEAD) : head_end] + b'"')
    start = head_end + _HEAD_END.index(b"[")
    while not eof:
        cut = buf.rfind(_SEPARATOR, start, end)
        if cut < 0:
            # One entry fills the buffer (a huge lastPrompt, say): make room and read on.
            buf.extend(bytes(len(buf)))
            end, eof = _fill(stream, buf, end)
            continue
        comma = cut + _SEPARATOR_COMMA
        buf[comma] = _CLOSE
        with memoryview(buf) as view:
            collector.add_array(view[start : comma + 1])
        rest = end - comma - 1
        buf[1 : 1 + rest] = buf[comma + 1 : end]
        buf[0] = _OPEN
        start, (end, eof) = 0, _fill(stream, buf, 1 + rest)
    if buf.endswith(_TAIL, start, end):
        tail = end - len(_TAIL)
    elif buf.endswith(_TAIL + b"\n", start, end):
        tail = end - len(_TAIL) - 1
    else:
        return None
    with memoryview(buf) as view:
        collector.add_array(view[start : tail + _TAIL_BRACKET + 1])
    return last_modified


def _fill(stream: ReadableFile, buf: bytearray, end: int) -> tuple[int, bool]:
    """Read into ``buf[end:]`` until it is full; the new end, and whether the stream ended."""
    with memoryview(buf) as view:
        while end < len(buf):
            count = stream.readinto(view[end:])
            if not count:
                return end, True
            end += count
    return end, False


def _decode_general(data: bytes, source: str, collector: _Collector) -> str | None:
    try:
        envelope = _ENVELOPE_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        # A newer version may have any shape: name it by its version rather than call it corrupt.
        _check_version(_version_of(data), source)
        raise MappingCorruptError(source, str(exc)) from None
    except _BAD as exc:
        raise MappingCorruptError(source, str(exc)) from None
    _check_version(envelope.version, source)
    raws = envelope.mappings
    if raws is None:
        raise MappingCorruptError(source, "Object missing required field `mappings`")
    for start in range(0, len(raws), _DECODE_CHUNK):
        collector.add_raws(raws[start : start + _DECODE_CHUNK])
    return envelope.last_modified if isinstance(envelope.last_modified, str) else None


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


class _Collector:
    """The valid entries of one file, gathered batch by batch, and why the others were dropped."""

    __slots__ = ("kept", "seen", "shared", "titles", "warnings")

    def __init__(self) -> None:
        self.kept: list[ThreadMapping] = []
        self.warnings: list[MappingWarning] = []
        self.seen = 0  # entries of the file so far, kept or not: the next one's position
        self.shared: dict[str, str] = {}
        self.titles: dict[str, str] = {}

    def add_array(self, text: memoryview) -> None:
        """Add the entries of a JSON array.

        Raises:
            msgspec.DecodeError: ``text`` is not a JSON array (a ``ValidationError`` never
                escapes: invalid entries are dropped).
            RecursionError: ``text`` nests too deeply.
        """
        try:
            batch = _BATCH_DECODER.decode(text)
        except msgspec.ValidationError:
            pass
        else:
            if self._settle(batch):
                self.kept += batch
                self.seen += len(batch)
                return
        self._add_one_by_one(_RAWS_DECODER.decode(text))

    def add_raws(self, raws: list[msgspec.Raw]) -> None:
        """Add entries that are still raw JSON."""
        try:
            batch = list(map(_ENTRY_DECODER.decode, raws))
        except _BAD:
            pass
        else:
            if self._settle(batch):
                self.kept += batch
                self.seen += len(batch)
                return
        self._add_one_by_one(raws)

    def _add_one_by_one(self, raws: list[msgspec.Raw]) -> None:
        valid = []
        for entry, raw in enumerate(raws, self.seen):
            try:
                mapping = _ENTRY_DECODER.decode(raw)
                _TIMES_DECODER.decode(raw)
            except _BAD as exc:
                self.warnings.append(_entry_warning(entry, raw, exc))
            else:
                valid.append(mapping)
        self._settle(valid)  # all valid now: this only shares their strings
        self.kept += valid
        self.seen += len(raws)

    def _settle(self, batch: list[ThreadMapping]) -> bool:
        """Share the batch's repeated strings; whether all its timestamps are instants.

        The decoder makes a new string per value, yet users, DM channels, projects and
        directories repeat across thousands of entries, and so may titles: one shared copy of
        each saves about 40% of the memory.  The structs are fresh from the decoder, so setting
        their frozen fields is safe.
        """
        share = self.shared.setdefault
        titles = self.titles.setdefault if len(self.titles) < _SHARED_TITLES else None
        put = msgspec.structs.force_setattr
        unshared: list[str] = []  # endedAt stamps that are not lastActivityAt's
        # One Python loop touching each struct once beats a C-level map() per field here: the
        # batch is still in the caches, and map() over force_setattr is no cheaper per call.
        for m in batch:
            put(m, "mattermost_user_id", share(m.mattermost_user_id, m.mattermost_user_id))
            put(m, "dm_channel_id", share(m.dm_channel_id, m.dm_channel_id))
            put(m, "project_name", share(m.project_name, m.project_name))
            put(m, "directory", share(m.directory, m.directory))
            title = m.session_title
            if title is not None and titles is not None:
                put(m, "session_title", titles(title, title))
            ended = m.ended_at
            if ended is not None:
                if ended == m.last_activity_at:
                    put(m, "ended_at", m.last_activity_at)
                else:
                    unshared.append(ended)
            if m.opencode_server:
                put(m, "opencode_server", share(m.opencode_server, m.opencode_server))
            if m.model:
                put(m, "model", share(m.model, m.model))
        stamps = list(map(_CREATED_AT, batch))
        stamps += map(_LAST_ACTIVITY_AT, batch)
        stamps += unshared
        # One C-level parse of every stamp, by the parser a datetime field of the file would
        # get (msgspec's; 25% faster than a JSON round trip of the list).  Which entry is wrong
        # is left to the entry-by-entry pass, which names it.
        try:
            msgspec.convert(stamps, _STAMPS)
        except msgspec.ValidationError:
            return False
        return True


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


# --- encoding ----------------------------------------------------------------------------------

# Entries per encoded chunk: chunk buffers (~600 KB) are reused by the allocator, while
# whole-file ones (two of ~58 MB for 100k entries) are freshly mapped and page-faulted on every
# save.  At 100k entries 1024 saves ~7% faster than 256 (fewer calls) and than 2048 (caches).
_CHUNK: Final = 1024
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


# --- the index and the merge, re-exported -------------------------------------------------------

_MOVED: Final = frozenset({"MappingIndex", "MergeResult", "merge"})


def __getattr__(name: str) -> object:
    # mmthreads.mapping_index imports this module's types, so importing it from here at the top
    # would be circular; resolving the old names on first use keeps old imports working.
    if name in _MOVED:
        from mmthreads import mapping_index

        return getattr(mapping_index, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
