"""Where inbound handling stopped: a small persisted cursor so each DM post is handled once.

Per DM channel the cursor keeps the highest ``create_at`` handled and the ids of the posts
handled at exactly that millisecond (two posts can share one); a bounded set of recent ids
catches a post seen both live and when catching up. The cursor lives in its own small JSON file
next to the mapping file (``<stem>.cursor.json``), so the mapping file stays the plugin's format.

The first start (no cursor file) and an unreadable file start from "now": the DMs' history is
never replayed.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Final

from mmthreads.atomic_file import write_atomically

if TYPE_CHECKING:
    from pathlib import Path

    from mmthreads.wire.mattermost import Post

__all__ = ["InboundCursor", "cursor_path"]

logger = logging.getLogger(__name__)

_RECENT_LIMIT: Final = 2_000
_VERSION: Final = 1


def cursor_path(mapping_file: Path) -> Path:
    """The cursor file that goes with ``mapping_file``."""
    return mapping_file.with_name(f"{mapping_file.stem}.cursor.json")


class _Mark:
    """One channel's position: the newest ``create_at`` handled and its post ids."""

    __slots__ = ("at_ms", "ids")

    def __init__(self, at_ms: int, ids: set[str]) -> None:
        self.at_ms = at_ms
        self.ids = ids


class InboundCursor:
    """The posts already handled, per DM channel (sans-IO except :meth:`load`/:meth:`save`).

    Args:
        path: The JSON file it is saved to.
        start_ms: Where a channel without a mark starts (the first start's "now").
    """

    def __init__(self, path: Path, *, start_ms: int) -> None:
        self.path: Final = path
        self.start_ms = start_ms
        self.dirty = False
        self._marks: dict[str, _Mark] = {}
        self._recent: deque[str] = deque(maxlen=_RECENT_LIMIT)
        self._recent_set: set[str] = set()

    def __repr__(self) -> str:
        return f"<InboundCursor channels={len(self._marks)} dirty={self.dirty}>"

    # -- queries and updates --------------------------------------------------------------

    def since(self, channel_id: str) -> int:
        """The ``create_at`` up to which ``channel_id`` was handled."""
        mark = self._marks.get(channel_id)
        return self.start_ms if mark is None else mark.at_ms

    def is_new(self, post: Post) -> bool:
        """Whether ``post`` was not handled yet (an older post counts as handled)."""
        if post.id in self._recent_set:
            return False
        mark = self._marks.get(post.channel_id)
        if mark is None:
            return post.create_at >= self.start_ms
        if post.create_at == mark.at_ms:
            return post.id not in mark.ids
        return post.create_at > mark.at_ms

    def mark(self, post: Post) -> None:
        """Record ``post`` as handled."""
        if post.id not in self._recent_set:
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(post.id)
            self._recent_set.add(post.id)
        mark = self._marks.get(post.channel_id)
        if mark is None or post.create_at > mark.at_ms:
            self._marks[post.channel_id] = _Mark(post.create_at, {post.id})
        elif post.create_at == mark.at_ms:
            mark.ids.add(post.id)
        self.dirty = True

    def missed(self, channel_id: str, posts: list[Post]) -> list[Post]:
        """The new, undeleted posts of a ``since`` answer, oldest first (edits are skipped)."""
        fresh = [p for p in posts if p.channel_id == channel_id and not p.delete_at]
        return sorted(
            (p for p in fresh if self.is_new(p)), key=lambda post: (post.create_at, post.id)
        )

    # -- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        """The cursor as JSON-ready data."""
        return {
            "version": _VERSION,
            "start_ms": self.start_ms,
            "channels": {
                channel: {"at_ms": mark.at_ms, "ids": sorted(mark.ids)}
                for channel, mark in sorted(self._marks.items())
            },
            "recent": list(self._recent),
        }

    @classmethod
    def load(cls, path: Path, *, now_ms: int) -> InboundCursor:
        """Read the cursor file; a missing or unreadable one starts from ``now_ms``."""
        cursor = cls(path, start_ms=now_ms)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            logger.info("no inbound cursor yet: starting from now")
            cursor.dirty = True
            return cursor
        except OSError as exc:
            logger.warning("cannot read the inbound cursor %s (%s): starting from now", path, exc)
            cursor.dirty = True
            return cursor
        try:
            cursor._restore(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("inbound cursor %s is unreadable (%s): starting from now", path, exc)
            cursor = cls(path, start_ms=now_ms)
            cursor.dirty = True
        return cursor

    def _restore(self, data: object) -> None:
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ValueError("not a cursor file of version 1")
        start = data["start_ms"]
        channels = data["channels"]
        recent = data.get("recent", [])
        if not isinstance(start, int) or not isinstance(channels, dict):
            raise TypeError("bad start_ms or channels")
        if not isinstance(recent, list):
            raise TypeError("bad recent")
        marks: dict[str, _Mark] = {}
        for channel, entry in channels.items():
            at_ms, ids = entry["at_ms"], entry["ids"]
            if not isinstance(at_ms, int) or not isinstance(ids, list):
                raise TypeError(f"bad mark for {channel}")
            marks[str(channel)] = _Mark(at_ms, {str(i) for i in ids})
        self.start_ms = start
        self._marks = marks
        for post_id in recent[-_RECENT_LIMIT:]:
            self._recent.append(str(post_id))
        self._recent_set = set(self._recent)

    def dump(self) -> bytes:
        """The file's content now; the cursor counts as saved from here (see :meth:`write`)."""
        self.dirty = False
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    def write(self, data: bytes) -> None:
        """Write ``data`` atomically (see :func:`mmthreads.atomic_file.write_atomically`).

        Safe to run in a worker thread: it touches no state of the cursor.
        """
        write_atomically(self.path, data)

    def save(self) -> None:
        """Write the cursor now (:meth:`dump` then :meth:`write`)."""
        self.write(self.dump())
