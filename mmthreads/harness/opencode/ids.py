"""Identifiers shaped and ordered like OpenCode's own.

OpenCode ids are ``<prefix>_`` + 12 hex digits + 14 base62 characters.  The hex part is the low
48 bits of ``milliseconds * 0x1000 + counter`` (the counter restarts every millisecond), so ids of
one kind sort by creation time.  Session ids use the bitwise complement ("descending"), so the
newest session sorts first: ``ses_debf0dc6cffe…`` is ``~0x2140f2393001``.  Compare the recorded
trace, where ``evt_2140f1058001…`` and ``msg_2140f240a001…`` ascend and ``ses_debf…`` descends.
"""

from __future__ import annotations

import random
import string
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["IdSource"]

_BASE62: Final = string.digits + string.ascii_uppercase + string.ascii_lowercase
_MASK48: Final = (1 << 48) - 1
_RANDOM_CHARS: Final = 14

_ADJECTIVES: Final = (
    "brave calm clever cosmic eager gentle glowing golden happy lucky mighty nimble proud quick "
    "quiet shiny silent stellar swift tidy witty"
).split()
_NOUNS: Final = (
    "cabin cactus comet eagle falcon garden harbor island knight lagoon meadow orbit pixel "
    "planet river rocket tiger valley wizard"
).split()


class IdSource:
    """Makes ``ses_``/``msg_``/``prt_``/``per_``/``que_``/``evt_`` ids and session slugs.

    Args:
        clock_ms: Returns the current time in epoch milliseconds.
        seed: Seed for the random suffixes, so a run's ids are reproducible.
    """

    def __init__(self, clock_ms: Callable[[], int], *, seed: int = 0) -> None:
        self._clock_ms = clock_ms
        self._random = random.Random(seed)
        self._last_ms = -1
        self._counter = 0

    def ascending(self, prefix: str) -> str:
        """A new id that sorts after every earlier one with the same prefix."""
        return self._make(prefix, descending=False)

    def descending(self, prefix: str) -> str:
        """A new id that sorts before every earlier one (OpenCode's session ids)."""
        return self._make(prefix, descending=True)

    def slug(self) -> str:
        """A session slug such as ``stellar-cabin``."""
        return f"{self._random.choice(_ADJECTIVES)}-{self._random.choice(_NOUNS)}"

    def hex_hash(self) -> str:
        """Forty random hex digits, like a git object name."""
        return f"{self._random.getrandbits(160):040x}"

    def _make(self, prefix: str, *, descending: bool) -> str:
        now = self._clock_ms()
        # Never step backwards, even if the wall clock does: ids must stay sortable.
        now = max(now, self._last_ms)
        if now != self._last_ms:
            self._last_ms = now
            self._counter = 0
        self._counter += 1
        if self._counter >= 0x1000:
            # More than 4095 ids in one millisecond: borrow the next millisecond.
            self._last_ms += 1
            self._counter = 1
        value = (self._last_ms * 0x1000 + self._counter) & _MASK48
        if descending:
            value = ~value & _MASK48
        suffix = "".join(self._random.choice(_BASE62) for _ in range(_RANDOM_CHARS))
        return f"{prefix}_{value:012x}{suffix}"
