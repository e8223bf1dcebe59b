"""The mapping file codec, merge and index (pure: no files, no clock)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmthreads.mapping as codec
from mmthreads.core.states import ThreadState
from mmthreads.errors import MappingCorruptError, MappingVersionError
from mmthreads.mapping import (
    DecodedFile,
    ThreadMapping,
    decode_file,
    decode_stream,
    encode_chunks,
    encode_file,
    iso_timestamp,
)
from tests.samples import SPEC_MAPPING

if TYPE_CHECKING:
    from pathlib import Path

# Verbatim from spec.md, "Persistence: the mapping file".
SPEC_EXAMPLE = b"""{
  "version": 1,
  "lastModified": "2026-01-15T15:45:00.000Z",
  "mappings": [
    {
      "sessionId": "ses_a1b2c3d4e5f6g7h8i9j0k1l2m3",
      "threadRootPostId": "x1y2z3a4b5c6d7e8f9g0h1i2j3",
      "shortId": "ses_a1b2",
      "mattermostUserId": "abc123def456ghi789jkl012mn",
      "dmChannelId": "ghi789jkl012mno345pqr678st",
      "projectName": "business-automation",
      "directory": "/home/dev/business-automation",
      "sessionTitle": "Fix email pipeline",
      "status": "active",
      "createdAt": "2026-01-15T14:30:00.000Z",
      "lastActivityAt": "2026-01-15T15:45:00.000Z"
    }
  ]
}"""


def mapping(n: int = 1, **changes: object) -> ThreadMapping:
    base = ThreadMapping(
        session_id=f"ses_{n:026d}",
        thread_root_post_id=f"root{n:022d}",
        short_id=f"ses_{n:04d}",
        mattermost_user_id="user" + "u" * 22,
        dm_channel_id="chan" + "c" * 22,
        project_name="billing",
        directory="/home/dev/billing",
        session_title=f"Session {n}",
        status=ThreadState.ACTIVE,
        created_at="2026-01-15T14:30:00.000Z",
        last_activity_at="2026-01-15T15:45:00.000Z",
    )
    return msgspec.structs.replace(base, **changes)


def entry(n: int = 1, **changes: object) -> dict[str, object]:
    raw: dict[str, object] = json.loads(msgspec.json.encode(mapping(n)))
    for key, value in changes.items():
        if value is ...:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def file_of(*entries: object, version: object = 1) -> bytes:
    return json.dumps(
        {"version": version, "lastModified": "2026-01-15T15:45:00.000Z", "mappings": entries}
    ).encode()


# --- the spec's example and the encoding -------------------------------------------------------


def test_the_spec_example_loads_with_every_field() -> None:
    decoded = decode_file(SPEC_EXAMPLE)
    assert decoded.warnings == []
    assert decoded.last_modified == "2026-01-15T15:45:00.000Z"
    assert decoded.mappings == [SPEC_MAPPING]


def test_the_spec_example_round_trips() -> None:
    decoded = decode_file(SPEC_EXAMPLE)
    assert decoded.last_modified is not None
    ours = encode_file(decoded.mappings, decoded.last_modified)
    assert json.loads(ours) == json.loads(SPEC_EXAMPLE)
    # Same field order and layout as the plugin's JSON.stringify(…, null, 2), plus a newline.
    assert ours == SPEC_EXAMPLE + b"\n"
    again = decode_file(ours)
    assert encode_file(again.mappings, "2026-01-15T15:45:00.000Z") == ours


@pytest.mark.parametrize(
    "count", [0, 1, 255, 256, 257, 700, codec._CHUNK - 1, codec._CHUNK + 1, 2 * codec._CHUNK + 5]
)
def test_chunked_encoding_is_exactly_the_formatted_whole_file(count: int) -> None:
    mappings = [
        mapping(n, status=ThreadState.ENDED, ended_at="2026-01-15T16:00:00.000Z")
        if n % 3
        else mapping(n)
        for n in range(count)
    ]
    whole = {"version": 1, "lastModified": "2026-01-15T15:45:00.000Z", "mappings": mappings}
    expected = msgspec.json.format(msgspec.json.encode(whole), indent=2) + b"\n"
    assert b"".join(encode_chunks(mappings, "2026-01-15T15:45:00.000Z")) == expected


def test_extras_round_trip_and_are_left_out_at_their_defaults() -> None:
    plain = mapping(1)
    extra = mapping(2, opencode_server="http://127.0.0.1:4096", model="a/b", last_prompt="hi")
    data = encode_file([plain, extra], "2026-01-15T15:45:00.000Z")
    raw = json.loads(data)["mappings"]
    assert set(raw[0]) == {
        "sessionId",
        "threadRootPostId",
        "shortId",
        "mattermostUserId",
        "dmChannelId",
        "projectName",
        "directory",
        "sessionTitle",
        "status",
        "createdAt",
        "lastActivityAt",
    }
    assert (raw[1]["opencodeServer"], raw[1]["model"], raw[1]["lastPrompt"]) == (
        "http://127.0.0.1:4096",
        "a/b",
        "hi",
    )
    assert decode_file(data).mappings == [plain, extra]


def test_repeated_strings_are_shared_after_decoding() -> None:
    decoded = decode_file(
        file_of(entry(1), entry(2), entry(3, status="ended", endedAt=entry(3)["lastActivityAt"]))
    )
    first, second, third = decoded.mappings
    assert first.mattermost_user_id is second.mattermost_user_id is third.mattermost_user_id
    assert first.directory is third.directory
    assert first.dm_channel_id is second.dm_channel_id
    assert third.ended_at is third.last_activity_at


def test_titles_are_shared_until_many_distinct_ones_were_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = file_of(*(entry(n, sessionTitle="Fix the build") for n in range(1, 4)))
    first, second, third = decode_file(data).mappings
    assert first.session_title is second.session_title is third.session_title
    monkeypatch.setattr(codec, "_SHARED_TITLES", 0)
    first, second, _ = decode_file(data).mappings
    assert first.session_title == second.session_title
    assert first.session_title is not second.session_title
    assert first.directory is second.directory  # other fields are shared regardless


# --- the two ways of decoding -------------------------------------------------------------------


def pretty(*entries: object, last_modified: object = "2026-01-15T15:45:00.000Z") -> bytes:
    """A file in the layout both tools write (JSON.stringify(file, null, 2))."""
    whole = {"version": 1, "lastModified": last_modified, "mappings": entries}
    return json.dumps(whole, indent=2, ensure_ascii=False).encode()


def decoded_both_ways(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[DecodedFile, bool]:
    """``decode_file(data)``, and whether it went the general way."""
    general = codec._decode_general
    went: list[bool] = []

    def spy(*args: object, **kwargs: object) -> str | None:
        went.append(True)
        return general(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patched:
        patched.setattr(codec, "_decode_general", spy)
        return decode_file(data), bool(went)


BAD_ENTRIES: dict[int, dict[str, object]] = {
    7: {"status": "paused"},
    450: {"createdAt": "yesterday"},
    451: {"lastActivityAt": "2026-02-30T10:00:00.000Z"},  # no 30 February
    900: {"lastActivityAt": "2026-02-29T10:00:00.000Z"},  # 2026 is not a leap year
    1350: {"endedAt": "2026-01-15T16:00:00"},  # no time zone
    2999: {"sessionId": ...},
}


def many_entries(count: int = 3000) -> list[dict[str, object]]:
    out = [entry(n, **BAD_ENTRIES.get(n, {})) for n in range(count)]
    out[5]["lastActivityAt"] = "2024-02-29T10:00:00.000Z"  # a leap day: valid
    out[6]["createdAt"] = "2026-01-15T16:30:00.123456+02:00"  # another valid form
    out[8]["endedAt"] = out[8]["lastActivityAt"]
    return out


def test_a_large_file_in_the_canonical_layout_is_decoded_batch_by_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries = many_entries()
    data = pretty(*entries)
    assert len(data) > 4 * codec._BATCH_BYTES  # several batches
    fast, general = decoded_both_ways(data, monkeypatch)
    assert not general
    assert fast == decode_file(file_of(*entries))  # compact JSON: the general way
    assert [w.entry for w in fast.warnings] == sorted(BAD_ENTRIES)
    assert fast.warnings[2].path == "$.mappings[451].lastActivityAt"
    assert "RFC3339" in fast.warnings[2].message
    assert len(fast.mappings) == 3000 - len(BAD_ENTRIES)


def test_the_plugins_layout_without_a_final_newline_is_canonical_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded, general = decoded_both_ways(SPEC_EXAMPLE, monkeypatch)
    assert not general
    assert decoded == decode_file(SPEC_EXAMPLE.replace(b"\n", b""))


def test_an_entry_longer_than_a_batch_grows_the_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [entry(1), entry(2, lastPrompt="x" * (3 * codec._BATCH_BYTES)), entry(3)]
    decoded, general = decoded_both_ways(pretty(*entries), monkeypatch)
    assert not general
    assert [len(m.last_prompt) for m in decoded.mappings] == [0, 3 * codec._BATCH_BYTES, 0]


def test_an_escaped_last_modified_is_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pretty(entry(1)).replace(b'"2026-01-15T15:45:00.000Z"', b'"2026\\u002d01 \\"q\\""', 1)
    decoded, general = decoded_both_ways(data, monkeypatch)
    assert (decoded.last_modified, general) == ('2026-01 "q"', False)


@pytest.mark.parametrize(
    "data",
    [
        pretty(entry(1), last_modified=7),  # not a string: lastModified is None
        pretty(entry(1)).replace(b"\n}", b"\n}\n\n"),  # other trailing whitespace
        pretty(entry(1)).replace(b'"version": 1,', b'"version":  1,'),
        pretty(entry(1)).replace(b"\n  ]\n}", b'\n  ],\n  "more": []\n}'),
        pretty(),
        pretty(entry(1)).replace(b"\n", b"\r\n"),
        b'{"version": 1, "lastModified": "x", "mappings": ['
        + json.dumps(entry(1)).encode()
        + b"]}",
    ],
)
def test_other_layouts_go_the_general_way(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded, general = decoded_both_ways(data, monkeypatch)
    assert general
    assert [m.session_id for m in decoded.mappings] == [mapping(1).session_id] * bool(
        decoded.mappings
    )


def test_a_boundary_inside_an_entry_sends_the_file_the_general_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only a hand-edited file puts objects at the entries' indentation inside an entry; the cut
    # there makes a batch that is not JSON, and the file is read the general way.
    nested = b'"future": [\n    {\n      "a": 1\n    },\n    {\n      "b": 2\n    }\n  ],\n'
    text = pretty(entry(1), entry(2), entry(3))
    at = text.index(b'"threadRootPostId"', text.index(b'"sessionId": "ses_' + b"2".zfill(26)))
    data = text[:at] + nested + b"      " + text[at:]
    # The first batch ends just after the false boundary, so that it is the last one seen.
    false_boundary = data.index(b"\n    },\n    {\n", data.index(b'"future"'))
    monkeypatch.setattr(codec, "_BATCH_BYTES", false_boundary + 20)
    decoded, general = decoded_both_ways(data, monkeypatch)
    assert general
    assert decoded.mappings == [mapping(1), mapping(2), mapping(3)]


@pytest.mark.parametrize("layout", ["pretty", "compact"])
def test_decode_stream_reads_an_open_file(tmp_path: Path, layout: str) -> None:
    entries = many_entries(600)
    data = pretty(*entries) if layout == "pretty" else file_of(*entries)
    path = tmp_path / "mattermost-threads.json"
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as stream:
        from_stream = decode_stream(stream, source=str(path))
    assert from_stream == decode_file(data)
    assert len(from_stream.warnings) == 3
    with pytest.raises(MappingVersionError):
        decode_stream(io.BytesIO(data.replace(b'"version": 1', b'"version": 2', 1)))


# --- invalid entries, versions, corrupt files -----------------------------------------------


@pytest.mark.parametrize(
    ("bad", "session_id", "path", "says"),
    [
        (entry(2, sessionId=...), None, "$.mappings[1]", "missing required field `sessionId`"),
        (entry(2, directory=""), "ses_" + "2".zfill(26), "$.mappings[1].directory", "length >= 1"),
        (entry(2, shortId="ses"), "ses_" + "2".zfill(26), "$.mappings[1].shortId", "length >= 6"),
        (entry(2, status="paused"), "ses_" + "2".zfill(26), "$.mappings[1].status", "Invalid enum"),
        (
            entry(2, createdAt="yesterday"),
            "ses_" + "2".zfill(26),
            "$.mappings[1].createdAt",
            "RFC3339",
        ),
        (
            entry(2, lastActivityAt="2026-02-30T10:00:00.000Z"),
            "ses_" + "2".zfill(26),
            "$.mappings[1].lastActivityAt",
            "RFC3339",
        ),
        (
            entry(2, createdAt="2026-01-15T14:30:00"),
            "ses_" + "2".zfill(26),
            "$.mappings[1].createdAt",
            "timezone",
        ),
        (entry(2, endedAt=17), "ses_" + "2".zfill(26), "$.mappings[1].endedAt", "Expected `str"),
        (entry(2, sessionId=7), None, "$.mappings[1].sessionId", "Expected `str`"),
        ("not an object", None, "$.mappings[1]", "Expected `object`"),
    ],
)
def test_an_invalid_entry_is_dropped_with_a_warning_naming_it(
    bad: object, session_id: str | None, path: str, says: str
) -> None:
    decoded = decode_file(file_of(entry(1), bad, entry(3)))
    assert [m.session_id for m in decoded.mappings] == [
        mapping(1).session_id,
        mapping(3).session_id,
    ]
    [warning] = decoded.warnings
    assert (warning.entry, warning.session_id, warning.path) == (1, session_id, path)
    assert says in warning.message
    assert warning.message.endswith(f"- at `{path}`")
    assert "entry 1" in str(warning)


def test_many_bad_entries_in_a_large_file_are_each_named() -> None:
    entries = [entry(n) if n % 500 else entry(n, status="?") for n in range(1, 3000)]
    decoded = decode_file(file_of(*entries))
    assert [w.entry for w in decoded.warnings] == [n - 1 for n in range(500, 3000, 500)]
    assert len(decoded.mappings) == 3000 - 1 - 5


def test_tolerated_oddities_are_kept() -> None:
    odd = entry(1, endedAt="2026-01-15T16:00:00.000Z", someFutureField={"x": 1})
    offset = entry(2, createdAt="2026-01-15T16:30:00+02:00", sessionTitle=None)
    decoded = decode_file(file_of(odd, offset))
    assert decoded.warnings == []
    assert decoded.mappings[0].ended_at == "2026-01-15T16:00:00.000Z"  # status stays active
    assert decoded.mappings[1].created_at == "2026-01-15T16:30:00+02:00"  # the file's string


@pytest.mark.parametrize(
    "data",
    [
        file_of(entry(1), version=2),
        b'{"version": 7, "sessions": "a different shape"}',
        b'{"version": 2, "mappings": [{"renamed": true}]}',
    ],
)
def test_a_newer_version_is_refused(data: bytes) -> None:
    with pytest.raises(MappingVersionError) as caught:
        decode_file(data, source="/x/mattermost-threads.json")
    assert caught.value.version in (2, 7)
    assert "/x/mattermost-threads.json" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'"a string"',
        b"{}",
        b'{"version": 1}',
        b'{"version": 1, "mappings": {}}',
        b'{"version": "1", "mappings": []}',
        b'{"version": 0, "mappings": []}',
        b'{"version": 1.0, "mappings": []}',
        b'{"version": true, "mappings": []}',
        b'{"version": 1, "mappings": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    ],
)
def test_an_unusable_file_is_corrupt(data: bytes) -> None:
    with pytest.raises(MappingCorruptError):
        decode_file(data)


# --- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2026, 1, 15, 14, 30, tzinfo=UTC), "2026-01-15T14:30:00.000Z"),
        (datetime(2026, 1, 15, 14, 30, 5, 123999, tzinfo=UTC), "2026-01-15T14:30:05.123Z"),
        (
            datetime(2026, 1, 15, 16, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-15T14:30:00.000Z",
        ),
        (0, "1970-01-01T00:00:00.000Z"),
        (1768487400.25, "2026-01-15T14:30:00.250Z"),
        (datetime(99, 1, 2, tzinfo=UTC), "0099-01-02T00:00:00.000Z"),
    ],
)
def test_iso_timestamp_is_javascripts_form(when: datetime | float, expected: str) -> None:
    assert iso_timestamp(when) == expected


def test_iso_timestamp_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        iso_timestamp(datetime(2026, 1, 15, 14, 30))


# --- properties ---------------------------------------------------------------------------------

_CHARS = st.characters(codec="utf-8")  # any character JSON can carry (no lone surrogates)
_text = st.text(_CHARS, max_size=30)
_non_empty = st.text(_CHARS, min_size=1, max_size=30)
_instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
_offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_stamps = st.one_of(
    _instants.map(lambda d: iso_timestamp(d.replace(tzinfo=UTC))),
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), _instants, _offsets),
)
_mappings = st.builds(
    ThreadMapping,
    session_id=_non_empty,
    thread_root_post_id=_non_empty,
    short_id=st.text(_CHARS, min_size=6, max_size=10),
    mattermost_user_id=_non_empty,
    dm_channel_id=_non_empty,
    project_name=_non_empty,
    directory=_non_empty,
    session_title=st.none() | _text,
    status=st.sampled_from(ThreadState),
    created_at=_stamps,
    last_activity_at=_stamps,
    ended_at=st.none() | _stamps,
    opencode_server=_text,
    model=_text,
    last_prompt=_text,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_mappings, max_size=8), _stamps)
def test_valid_mappings_round_trip_unchanged(mappings: list[ThreadMapping], stamp: str) -> None:
    data = encode_file(mappings, stamp)
    decoded = decode_file(data)
    assert (decoded.mappings, decoded.warnings, decoded.last_modified) == (mappings, [], stamp)
    assert encode_file(decoded.mappings, stamp) == data


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
# Entries near the schema: valid ones with one field spoiled (or not), and loose key soups.
_spoiled = st.builds(
    lambda m, key, junk, spoil: {
        **json.loads(msgspec.json.encode(m)),
        **({key: junk} if spoil else {}),
    },
    _mappings,
    st.sampled_from(sorted(entry())),
    _json | _stamps | _non_empty,
    st.booleans(),
)
_soup = st.fixed_dictionaries({}, optional={k: _json | _stamps | _non_empty for k in entry()})
_near_files = st.fixed_dictionaries(
    {
        "version": st.sampled_from([1, 1, 1, 2, 0, "1"]),
        "mappings": st.lists(_spoiled | _soup | _json, max_size=4),
    },
    optional={"lastModified": _json},
)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _near_files.map(lambda v: json.dumps(v).encode())
)
def test_decoding_raises_only_the_documented_errors(data: bytes) -> None:
    try:
        decoded = decode_file(data)
    except (MappingCorruptError, MappingVersionError):
        return
    assert all(type(w.entry) is int and w.path.startswith("$.mappings[") for w in decoded.warnings)
    again = decode_file(encode_file(decoded.mappings, "2026-01-15T15:45:00.000Z"))
    assert (again.mappings, again.warnings) == (decoded.mappings, [])


_canonical_files = st.builds(
    lambda stamp, entries: {"version": 1, "lastModified": stamp, "mappings": entries},
    _stamps | _text,
    st.lists(_spoiled | _soup | _json, min_size=1, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(_canonical_files, st.sampled_from([16, 200, 1 << 18]))
def test_batches_agree_with_the_general_way(whole: dict[str, object], batch_bytes: int) -> None:
    def outcome(data: bytes) -> DecodedFile | type[Exception]:
        try:
            return decode_stream(io.BytesIO(data))
        except (MappingCorruptError, MappingVersionError) as exc:  # e.g. Infinity is not JSON
            return type(exc)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(codec, "_BATCH_BYTES", batch_bytes)
        in_batches = outcome(json.dumps(whole, indent=2).encode())
    assert in_batches == outcome(json.dumps(whole).encode())
