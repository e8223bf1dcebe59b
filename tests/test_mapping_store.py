"""The mapping file on disk: location, load, atomic save, merge, and what bad files get."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mmthreads import mapping_store
from mmthreads.errors import MappingFileError, MappingVersionError
from mmthreads.mapping import ThreadMapping, encode_chunks, encode_file
from mmthreads.mapping_store import FILE_NAME, MappingStore, default_mapping_path
from tests import mapping_writer
from tests.test_mapping import SPEC_EXAMPLE, entry, file_of, mapping

if TYPE_CHECKING:
    from collections.abc import Iterator

NOW = datetime(2026, 1, 15, 15, 45, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "opencode" / FILE_NAME


def saved(path: Path, mappings: list[ThreadMapping]) -> None:
    """Write ``mappings`` as another process (the plugin, say) would: temp file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name("other-writer.tmp")
    temp.write_bytes(encode_file(mappings, "2026-01-15T15:00:00.000Z"))
    os.replace(temp, path)


# --- location ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "explicit", "expected"),
    [
        ((), None, ".config/opencode/" + FILE_NAME),
        ((".config/opencode",), None, ".config/opencode/" + FILE_NAME),
        ((".opencode",), None, ".opencode/" + FILE_NAME),
        ((".config/opencode", ".opencode"), None, ".config/opencode/" + FILE_NAME),
        ((".opencode",), "elsewhere/threads.json", "elsewhere/threads.json"),
    ],
)
def test_default_location(
    tmp_path: Path, existing: tuple[str, ...], explicit: str | None, expected: str
) -> None:
    for folder in existing:
        (tmp_path / folder).mkdir(parents=True)
    chosen = default_mapping_path(tmp_path, tmp_path / explicit if explicit else None)
    assert chosen == tmp_path / expected


# --- load -------------------------------------------------------------------------------------


def test_a_missing_file_is_an_empty_store_and_the_first_save_creates_it(path: Path) -> None:
    store = MappingStore(path)
    result = store.load()
    assert (len(result.index), result.warnings, result.backup) == (0, (), None)
    assert not path.parent.exists()
    outcome = store.save([mapping(1)], NOW)
    assert not outcome.merged
    assert outcome.size == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert list(MappingStore(path).load().index) == [mapping(1)]


def test_the_spec_example_loads_and_our_output_is_stable(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(SPEC_EXAMPLE)
    store = MappingStore(path)
    index = store.load().index
    assert [m.session_id for m in index] == ["ses_a1b2c3d4e5f6g7h8i9j0k1l2m3"]
    store.save(index, NOW)
    first = path.read_bytes()
    assert json.loads(first)["mappings"] == json.loads(SPEC_EXAMPLE)["mappings"]
    assert json.loads(first)["lastModified"] == "2026-01-15T15:45:00.000Z"
    again = MappingStore(path)
    again.save(again.load().index, NOW)
    assert path.read_bytes() == first


def test_an_invalid_entry_among_three_is_dropped_and_reported(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir()
    path.write_bytes(file_of(entry(1), entry(2, status="paused"), entry(3)))
    with caplog.at_level(logging.WARNING, logger="mmthreads.mapping_store"):
        result = MappingStore(path).load()
    assert [m.session_id for m in result.index] == [mapping(1).session_id, mapping(3).session_id]
    [warning] = result.warnings
    assert (warning.entry, warning.session_id, warning.path) == (
        1,
        mapping(2).session_id,
        "$.mappings[1].status",
    )
    assert f"entry 1 (sessionId '{mapping(2).session_id}')" in caplog.text
    assert "$.mappings[1].status" in caplog.text


def test_duplicates_on_disk_keep_the_newer(path: Path) -> None:
    older = mapping(1, last_activity_at="2026-01-15T10:00:00.000Z")
    saved(path, [mapping(1), older])
    result = MappingStore(path).load()
    assert list(result.index) == [mapping(1)]
    assert [w.path for w in result.warnings] == ["$.mappings[*].sessionId"]


@pytest.mark.parametrize(
    "data", [b"", b"{truncated", b"\x00\x01binary", b"[1, 2]", b'{"version": 1}']
)
def test_a_corrupt_file_is_set_aside_and_the_store_starts_empty(
    path: Path, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir()
    path.write_bytes(data)
    store = MappingStore(path)
    with caplog.at_level(logging.ERROR, logger="mmthreads.mapping_store"):
        result = store.load(now=NOW)
    backup = path.with_name(FILE_NAME + ".corrupt-20260115T154500Z")
    assert (len(result.index), result.backup) == (0, backup)
    assert result.problem
    assert backup.read_bytes() == data
    assert not path.exists()
    assert str(backup) in caplog.text
    store.save([mapping(1)], NOW)
    assert list(MappingStore(path).load().index) == [mapping(1)]
    assert backup.read_bytes() == data


def test_backups_never_overwrite_each_other(path: Path) -> None:
    path.parent.mkdir()
    for content in (b"first", b"second", b"third"):
        path.write_bytes(content)
        MappingStore(path).load(now=NOW)
    stem = FILE_NAME + ".corrupt-20260115T154500Z"
    assert [path.with_name(n).read_bytes() for n in (stem, stem + "-2", stem + "-3")] == [
        b"first",
        b"second",
        b"third",
    ]


def test_an_unreadable_path_is_set_aside_too(path: Path) -> None:
    path.mkdir(parents=True)  # a directory where the file should be: open() fails
    result = MappingStore(path).load(now=NOW)
    assert result.backup is not None
    assert result.backup.is_dir()
    assert result.problem is not None
    assert "cannot read" in result.problem


def test_a_newer_version_is_refused_and_never_overwritten(path: Path) -> None:
    path.parent.mkdir()
    original = b'{"version": 2, "mappings": [], "futureThing": true}'
    path.write_bytes(original)
    store = MappingStore(path)
    with pytest.raises(MappingVersionError) as caught:
        store.load()
    assert (caught.value.version, caught.value.path) == (2, str(path))
    assert store.refused
    with pytest.raises(MappingVersionError):
        store.save([mapping(1)], NOW)
    assert path.read_bytes() == original
    assert list(path.parent.iterdir()) == [path]


def test_a_newer_version_appearing_before_a_save_is_refused_too(path: Path) -> None:
    store = MappingStore(path)
    store.load()
    store.save([mapping(1)], NOW)
    newer = b'{"version": 3, "mappings": []}'
    path.write_bytes(newer)
    with pytest.raises(MappingVersionError):
        store.save([mapping(1)], NOW)
    with pytest.raises(MappingVersionError):
        store.save([mapping(1)], NOW)
    assert path.read_bytes() == newer


# --- save: merge, permissions, leftovers ------------------------------------------------------

EARLY, LATE = "2026-01-15T10:00:00.000Z", "2026-01-15T11:00:00.000Z"


def test_save_merges_what_another_writer_changed(path: Path) -> None:
    store = MappingStore(path)
    store.load()
    store.save([mapping(1), mapping(2)], NOW)
    ours_newer = mapping(1, last_activity_at=LATE, session_title="ours")
    ours_older = mapping(2, last_activity_at=EARLY, session_title="ours")
    theirs_older = mapping(1, last_activity_at=EARLY, session_title="theirs")
    theirs_newer = mapping(2, last_activity_at=LATE, session_title="theirs")
    only_theirs, only_ours = mapping(3), mapping(4)
    saved(path, [theirs_older, theirs_newer, only_theirs])
    outcome = store.save([ours_newer, ours_older, only_ours], NOW)
    assert outcome.merged
    assert set(outcome.adopted) == {theirs_newer, only_theirs}
    on_disk = list(MappingStore(path).load().index)
    assert on_disk == [ours_newer, theirs_newer, only_theirs, only_ours]


def test_a_change_landing_during_the_write_is_merged_too(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MappingStore(path)
    store.load()
    store.save([mapping(1)], NOW)
    encoded: list[int] = []

    def racing(mappings: list[ThreadMapping], stamp: str) -> Iterator[bytes | memoryview]:
        encoded.append(len(mappings))
        if len(encoded) == 1:
            saved(path, [mapping(1), mapping(2)])  # another writer lands while we write
        return encode_chunks(mappings, stamp)

    monkeypatch.setattr(mapping_store, "encode_chunks", racing)
    outcome = store.save([mapping(1)], NOW)
    assert encoded == [1, 2]
    assert (outcome.merged, outcome.adopted) == (True, (mapping(2),))
    assert list(MappingStore(path).load().index) == [mapping(1), mapping(2)]


def test_save_does_not_merge_its_own_file(path: Path) -> None:
    store = MappingStore(path)
    store.load()
    store.save([mapping(1), mapping(2)], NOW)
    outcome = store.save([mapping(1)], NOW)  # we dropped mapping 2 ourselves
    assert not outcome.merged
    assert list(MappingStore(path).load().index) == [mapping(1)]


def test_a_store_that_never_loaded_merges_before_writing(path: Path) -> None:
    saved(path, [mapping(1)])
    outcome = MappingStore(path).save([mapping(2)], NOW)
    assert outcome.merged
    assert outcome.adopted == (mapping(1),)
    assert list(MappingStore(path).load().index) == [mapping(1), mapping(2)]


def test_a_file_corrupted_by_another_writer_is_set_aside_at_save(path: Path) -> None:
    store = MappingStore(path)
    store.load()
    store.save([mapping(1)], NOW)
    path.write_bytes(b"garbage")
    outcome = store.save([mapping(1)], NOW)
    assert outcome.backup is not None
    assert outcome.backup.read_bytes() == b"garbage"
    assert list(MappingStore(path).load().index) == [mapping(1)]


def test_saved_files_are_owner_only_whatever_was_there(path: Path) -> None:
    saved(path, [mapping(1)])
    os.chmod(path, 0o644)
    old_umask = os.umask(0)
    try:
        MappingStore(path).save([mapping(1)], NOW)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_write_error_becomes_a_mapping_file_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(MappingFileError, match="cannot write"):
        MappingStore(blocker / FILE_NAME).save([mapping(1)], NOW)


def test_stale_temp_files_are_removed_on_load_and_fresh_ones_kept(path: Path) -> None:
    path.parent.mkdir()
    stale = path.with_name(f".{FILE_NAME}.abc123.tmp")
    fresh = path.with_name(f".{FILE_NAME}.def456.tmp")
    for temp in (stale, fresh):
        temp.write_bytes(b"half a file")
    old = NOW.timestamp() - 2 * 3600
    os.utime(stale, (old, old))
    os.utime(fresh, (NOW.timestamp(), NOW.timestamp()))
    MappingStore(path).load(now=NOW)
    assert (stale.exists(), fresh.exists()) == (False, True)


def test_no_temp_file_is_left_after_saves(path: Path) -> None:
    store = MappingStore(path)
    for n in range(3):
        store.save([mapping(i) for i in range(n + 1)], NOW)
    assert sorted(p.name for p in path.parent.iterdir()) == [FILE_NAME]


def test_fsync_can_be_switched_off(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    MappingStore(path, fsync=False).save([mapping(1)], NOW)
    assert calls == []
    MappingStore(path, fsync=True).save([mapping(1)], NOW)
    assert len(calls) == 2  # the file, then its directory


# --- a real process killed mid-save ---------------------------------------------------------


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_file_whole(path: Path) -> None:
    expected_a, expected_b = mapping_writer.expected_files()
    rnd = random.Random(20260115)
    seen: set[bytes] = set()
    killed_mid_write = 0
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.mapping_writer", str(path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
            time.sleep(rnd.uniform(0.0, 0.25))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            assert child.stdout is not None
            child.stdout.close()
        data = path.read_bytes()
        assert data in (expected_a, expected_b), "torn or foreign content after SIGKILL"
        seen.add(data)
        leftovers = list(path.parent.glob(f".{FILE_NAME}.*.tmp"))
        killed_mid_write += bool(leftovers)
        for temp in leftovers:
            temp.unlink()
    assert seen == {expected_a, expected_b}
    assert killed_mid_write > 0, "no kill landed inside a save: the test proved nothing"


def test_the_kill_tests_two_contents_differ_in_every_entry() -> None:
    a, b = mapping_writer.contents()
    assert len(a) == len(b) == mapping_writer.COUNT
    assert all(x.session_id == y.session_id and x != y for x, y in zip(a, b, strict=True))
