"""The inbound cursor: dedupe, ordering, persistence and a corrupt file."""

from __future__ import annotations

import logging
import stat
from typing import TYPE_CHECKING

from mmthreads.runtime.cursor import InboundCursor, cursor_path
from mmthreads.wire.mattermost import Post

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

NOW = 1_700_000_000_000


def _post(post_id: str, at: int, *, channel: str = "dm", delete_at: int = 0) -> Post:
    return Post(
        id=post_id,
        channel_id=channel,
        user_id="u",
        create_at=at,
        update_at=at,
        delete_at=delete_at,
    )


def test_cursor_path_is_next_to_the_mapping_file(tmp_path: Path) -> None:
    assert cursor_path(tmp_path / "threads.json") == tmp_path / "threads.cursor.json"


def test_a_post_is_new_once(tmp_path: Path) -> None:
    cursor = InboundCursor(tmp_path / "c.json", start_ms=NOW)
    post = _post("p1", NOW + 5)
    assert cursor.is_new(post)
    cursor.mark(post)
    assert not cursor.is_new(post)
    assert cursor.since("dm") == NOW + 5
    assert cursor.dirty


def test_posts_before_the_start_are_not_replayed(tmp_path: Path) -> None:
    cursor = InboundCursor(tmp_path / "c.json", start_ms=NOW)
    assert not cursor.is_new(_post("old", NOW - 1))
    assert cursor.since("other") == NOW


def test_same_millisecond_posts_are_told_apart(tmp_path: Path) -> None:
    cursor = InboundCursor(tmp_path / "c.json", start_ms=NOW)
    cursor.mark(_post("a", NOW + 1))
    assert cursor.is_new(_post("b", NOW + 1))
    assert not cursor.is_new(_post("a", NOW + 1))


def test_missed_skips_handled_edited_and_deleted_posts_in_order(tmp_path: Path) -> None:
    cursor = InboundCursor(tmp_path / "c.json", start_ms=NOW)
    handled = _post("h", NOW + 10)
    cursor.mark(handled)
    edited = Post(
        id="h", channel_id="dm", user_id="u", create_at=NOW + 10, update_at=NOW + 50, edit_at=1
    )
    posts = [
        _post("late", NOW + 30),
        edited,
        _post("gone", NOW + 20, delete_at=NOW + 40),
        _post("early", NOW + 15),
        _post("elsewhere", NOW + 16, channel="other"),
    ]
    assert [p.id for p in cursor.missed("dm", posts)] == ["early", "late"]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cursor = InboundCursor(path, start_ms=NOW)
    cursor.mark(_post("a", NOW + 1))
    cursor.mark(_post("b", NOW + 1))
    cursor.mark(_post("c", NOW + 2, channel="other"))
    cursor.save()
    assert not cursor.dirty
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = InboundCursor.load(path, now_ms=NOW + 1_000_000)
    assert again.start_ms == NOW
    assert again.since("dm") == NOW + 1
    assert again.since("other") == NOW + 2
    assert not again.is_new(_post("a", NOW + 1))
    assert not again.is_new(_post("b", NOW + 1))
    assert again.is_new(_post("d", NOW + 1))
    assert again.to_json() == cursor.to_json()


def test_missing_file_starts_from_now(tmp_path: Path) -> None:
    cursor = InboundCursor.load(tmp_path / "none.json", now_ms=NOW)
    assert cursor.since("dm") == NOW
    assert cursor.dirty


def test_corrupt_file_starts_from_now_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        cursor = InboundCursor.load(path, now_ms=NOW)
    assert cursor.since("dm") == NOW
    assert "unreadable" in caplog.text
    path.write_text('{"version": 1, "start_ms": "x", "channels": {}}', encoding="utf-8")
    assert InboundCursor.load(path, now_ms=NOW).since("dm") == NOW


def test_recent_ids_are_bounded(tmp_path: Path) -> None:
    cursor = InboundCursor(tmp_path / "c.json", start_ms=0)
    for n in range(2_100):
        cursor.mark(_post(f"p{n}", n + 1))
    data = cursor.to_json()
    recent = data["recent"]
    assert isinstance(recent, list)
    assert len(recent) == 2_000
    assert recent[0] == "p100"
