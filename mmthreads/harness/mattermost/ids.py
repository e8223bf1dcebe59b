"""Identifiers and timestamps the way Mattermost makes them.

Ids are 26 lowercase characters from Mattermost's base32 alphabet (``model.NewId``); timestamps
are integer epoch milliseconds.  Both sources are injectable so tests can be deterministic.
"""

from __future__ import annotations

import random
import re
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ID_ALPHABET", "IdFactory", "MillisClock", "is_valid_id", "wall_clock_ms"]

#: The alphabet of ``model.NewId`` (a base32 variant without look-alike characters).
ID_ALPHABET: Final = "ybndrfg8ejkmcpqxot1uwisza345h769"
_ID_RE: Final = re.compile(r"[a-z0-9]{26}")


def is_valid_id(value: object) -> bool:
    """Return whether ``value`` has the shape of a Mattermost id (``model.IsValidId``)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def wall_clock_ms() -> int:
    """The real clock, in epoch milliseconds (the default clock of the emulator)."""
    return int(time.time() * 1000)


class IdFactory:
    """Makes new ids; seeded for reproducible runs."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def __call__(self) -> str:
        """Return a fresh 26-character id."""
        return "".join(self._random.choice(ID_ALPHABET) for _ in range(26))


class MillisClock:
    """Wraps a millisecond clock so successive readings strictly increase.

    Two posts created in the same millisecond would otherwise tie on ``create_at``, which makes
    cursor paging ambiguous.  The real server can tie too, but rarely; the emulator never does.
    """

    def __init__(self, source: Callable[[], int] = wall_clock_ms) -> None:
        self._source = source
        self._last = 0

    def __call__(self) -> int:
        """Return the current time in epoch milliseconds, strictly after the previous reading."""
        now = max(int(self._source()), self._last + 1)
        self._last = now
        return now
