"""The in-memory index and the merge (pure: no files, no clock)."""

from __future__ import annotations

import pytest

import mmthreads.mapping as codec
from mmthreads import mapping_index
from mmthreads.core.states import ThreadState
from mmthreads.errors import MappingConflictError
from mmthreads.mapping_index import MappingIndex, merge
from tests.test_mapping import mapping

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


def test_the_old_import_path_still_works() -> None:
    assert (codec.MappingIndex, codec.MergeResult, codec.merge) == (
        mapping_index.MappingIndex,
        mapping_index.MergeResult,
        mapping_index.merge,
    )
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = codec.nothing_here


# --- the per-user index, built on first use -----------------------------------------------------

OTHER_USER = "someone-else-entirely-xyz1"


def test_for_user_sees_changes_made_before_and_after_it_was_built() -> None:
    a, b = mapping(1), mapping(2)
    index, _ = MappingIndex.build([a, b])
    moved_b = mapping(2, mattermost_user_id=OTHER_USER)
    index.put(moved_b)  # before the per-user index exists
    index.put(mapping(3))
    index.remove(a.session_id)
    assert list(index.for_user(a.mattermost_user_id)) == [mapping(3)]
    assert list(index.for_user(OTHER_USER)) == [moved_b]
    view = index.for_user(OTHER_USER)
    index.put(mapping(4, mattermost_user_id=OTHER_USER))  # after: kept up to date, live
    index.put(mapping(3, mattermost_user_id=OTHER_USER))
    assert list(view) == [
        moved_b,
        mapping(4, mattermost_user_id=OTHER_USER),
        mapping(3, mattermost_user_id=OTHER_USER),
    ]
    assert list(index.for_user(a.mattermost_user_id)) == []
    index.remove(moved_b.session_id)
    assert [m.session_id for m in view] == [mapping(4).session_id, mapping(3).session_id]


def test_the_per_user_index_is_built_once_and_only_when_asked() -> None:
    index, _ = MappingIndex.build([mapping(n) for n in range(5)])
    assert index._by_user is None
    assert index.get(mapping(1).session_id) == mapping(1)
    assert index._by_user is None
    assert len(index.for_user(mapping(1).mattermost_user_id)) == 5
    built = index._by_user
    assert built is not None
    index.for_user("nobody")
    assert index._by_user is built
    assert repr(MappingIndex.build([mapping(1)])[0]) == "<MappingIndex sessions=1 users=1>"


def test_an_empty_index_keeps_its_per_user_index_from_the_start() -> None:
    index = MappingIndex()
    index.put(mapping(1))
    assert index._by_user == {mapping(1).mattermost_user_id: {mapping(1).session_id: mapping(1)}}
