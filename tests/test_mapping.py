"""The mapping file codec, merge and index (pure: no files, no clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmthreads.core.states import ThreadState
from mmthreads.errors import MappingConflictError, MappingCorruptError, MappingVersionError
from mmthreads.mapping import (
    MappingIndex,
    ThreadMapping,
    decode_file,
    encode_chunks,
    encode_file,
    iso_timestamp,
    merge,
)

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
    assert decoded.mappings == [
        ThreadMapping(
            session_id="ses_a1b2c3d4e5f6g7h8i9j0k1l2m3",
            thread_root_post_id="x1y2z3a4b5c6d7e8f9g0h1i2j3",
            short_id="ses_a1b2",
            mattermost_user_id="abc123def456ghi789jkl012mn",
            dm_channel_id="ghi789jkl012mno345pqr678st",
            project_name="business-automation",
            directory="/home/dev/business-automation",
            session_title="Fix email pipeline",
            status=ThreadState.ACTIVE,
            created_at="2026-01-15T14:30:00.000Z",
            last_activity_at="2026-01-15T15:45:00.000Z",
        )
    ]


def test_the_spec_example_round_trips() -> None:
    decoded = decode_file(SPEC_EXAMPLE)
    assert decoded.last_modified is not None
    ours = encode_file(decoded.mappings, decoded.last_modified)
    assert json.loads(ours) == json.loads(SPEC_EXAMPLE)
    # Same field order and layout as the plugin's JSON.stringify(…, null, 2), plus a newline.
    assert ours == SPEC_EXAMPLE + b"\n"
    again = decode_file(ours)
    assert encode_file(again.mappings, "2026-01-15T15:45:00.000Z") == ours


@pytest.mark.parametrize("count", [0, 1, 255, 256, 257, 700])
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


# --- merge --------------------------------------------------------------------------------------

EARLY, LATE = "2026-01-15T10:00:00.000Z", "2026-01-15T11:00:00.000Z"


@pytest.mark.parametrize(
    ("ours_at", "disk_at", "winner"),
    [
        (LATE, EARLY, "ours"),
        (EARLY, LATE, "disk"),
        (LATE, LATE, "ours"),
        # Instants, not strings: 12:30+02:00 is 10:30Z, earlier than 11:00Z though it sorts later.
        ("2026-01-15T12:30:00.000+02:00", LATE, "disk"),
        # 09:30Z is later than 11:00+02:00 (09:00Z) though it sorts earlier.
        ("2026-01-15T09:30:00.000Z", "2026-01-15T11:00:00.000+02:00", "ours"),
    ],
)
def test_merge_keeps_the_newer_entry_per_session(ours_at: str, disk_at: str, winner: str) -> None:
    ours = mapping(1, last_activity_at=ours_at, session_title="ours")
    theirs = mapping(1, last_activity_at=disk_at, session_title="disk")
    result = merge([ours], [theirs])
    assert result.mappings == [ours if winner == "ours" else theirs]
    assert result.adopted == ([] if winner == "ours" else [theirs])
    assert result.warnings == []


def test_merge_keeps_entries_only_on_disk_and_entries_only_ours() -> None:
    shared_ours, shared_disk = mapping(2, last_activity_at=LATE), mapping(2, last_activity_at=EARLY)
    result = merge([mapping(1), shared_ours, mapping(4)], [mapping(3), shared_disk, mapping(5)])
    assert [m.session_id for m in result.mappings] == [
        mapping(n).session_id
        for n in (3, 2, 5, 1, 4)  # disk order, then ours only
    ]
    assert result.mappings[1] is shared_ours
    assert {m.session_id for m in result.adopted} == {mapping(3).session_id, mapping(5).session_id}


def test_merge_never_moves_or_shares_our_threads() -> None:
    ours = [mapping(1), mapping(2)]
    moved = mapping(1, thread_root_post_id="elsewhere", last_activity_at="2027-01-01T00:00:00Z")
    squatter = mapping(3, thread_root_post_id=mapping(2).thread_root_post_id)
    result = merge(ours, [moved, squatter])
    assert result.mappings == ours
    assert result.adopted == []
    assert sorted((w.session_id, w.path) for w in result.warnings) == [
        (mapping(1).session_id, "$.mappings[*].threadRootPostId"),
        (mapping(3).session_id, "$.mappings[*].threadRootPostId"),
    ]


def test_merge_of_two_disk_entries_claiming_one_thread_keeps_the_newer() -> None:
    older = mapping(1, last_activity_at=EARLY)
    newer = mapping(2, thread_root_post_id=older.thread_root_post_id, last_activity_at=LATE)
    result = merge([], [older, newer])
    assert result.mappings == [newer]
    assert [w.session_id for w in result.warnings] == [older.session_id]


# --- the index ----------------------------------------------------------------------------------


def test_index_lookups() -> None:
    a, b = mapping(1), mapping(2)
    c = mapping(3, mattermost_user_id="someone-else-entirely-xyz1")
    index, warnings = MappingIndex.build([a, b, c])
    assert warnings == []
    assert (index.get(a.session_id), index.get("ses_unknown")) == (a, None)
    assert (index.by_thread_root(b.thread_root_post_id), index.by_thread_root("x")) == (b, None)
    assert list(index.for_user(a.mattermost_user_id)) == [a, b]
    assert list(index.for_user(c.mattermost_user_id)) == [c]
    assert list(index.for_user("nobody")) == []
    assert (len(index), list(index), a.session_id in index, "x" in index) == (
        3,
        [a, b, c],
        True,
        False,
    )
    assert repr(index) == "<MappingIndex sessions=3 users=2>"


def test_index_put_replaces_and_remove_forgets() -> None:
    index = MappingIndex()
    first = mapping(1)
    index.put(first)
    moved_user = mapping(
        1, mattermost_user_id="another-user-id-xxxxxxxxxx", status=ThreadState.ENDED
    )
    index.put(moved_user)
    assert index.get(first.session_id) is moved_user
    assert index.by_thread_root(first.thread_root_post_id) is moved_user
    assert list(index.for_user(first.mattermost_user_id)) == []
    assert list(index.for_user(moved_user.mattermost_user_id)) == [moved_user]
    assert index.remove(first.session_id) is moved_user
    assert (
        len(index),
        index.get(first.session_id),
        index.by_thread_root(first.thread_root_post_id),
        list(index.for_user(moved_user.mattermost_user_id)),
    ) == (0, None, None, [])
    with pytest.raises(KeyError):
        index.remove(first.session_id)


def test_a_sessions_thread_root_never_changes() -> None:
    index, _ = MappingIndex.build([mapping(1), mapping(2)])
    with pytest.raises(MappingConflictError, match="never changes") as caught:
        index.put(mapping(1, thread_root_post_id="another-root"))
    assert caught.value.session_id == mapping(1).session_id
    with pytest.raises(MappingConflictError, match="belongs to"):
        index.put(mapping(3, thread_root_post_id=mapping(2).thread_root_post_id))
    assert list(index) == [mapping(1), mapping(2)]
    assert index.by_thread_root("another-root") is None


def test_build_drops_duplicates_keeping_the_newer() -> None:
    old, new = mapping(1, last_activity_at=EARLY), mapping(1, last_activity_at=LATE)
    tie_first, tie_second = mapping(2), mapping(2, session_title="second")
    thread_old = mapping(3, last_activity_at=EARLY)
    thread_new = mapping(
        4, thread_root_post_id=thread_old.thread_root_post_id, last_activity_at=LATE
    )
    index, warnings = MappingIndex.build([old, new, tie_first, tie_second, thread_old, thread_new])
    assert list(index) == [new, tie_first, thread_new]
    assert [(w.session_id, w.path) for w in warnings] == [
        (old.session_id, "$.mappings[*].sessionId"),
        (tie_second.session_id, "$.mappings[*].sessionId"),
        (thread_old.session_id, "$.mappings[*].threadRootPostId"),
    ]


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
