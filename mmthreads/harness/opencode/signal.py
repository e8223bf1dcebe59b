"""Wake waiters when the stand-in's state changes, without sleep-polling."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ChangeSignal"]

T = TypeVar("T")


class ChangeSignal:
    """A condition every state change announces; waiters re-check their predicate then.

    Every change of the stand-in's state publishes an event (or calls ``notify`` itself), so a
    waiter re-evaluates exactly when something could have changed.
    """

    def __init__(self) -> None:
        self._event = trio.Event()
        self.changes = 0

    def __repr__(self) -> str:
        return f"<ChangeSignal changes={self.changes}>"

    def notify(self) -> None:
        """Wake every waiter (sync: callable from the sans-IO layer's hooks)."""
        self.changes += 1
        self._event.set()
        self._event = trio.Event()

    async def wait_until(self, check: Callable[[], bool]) -> None:
        """Return once ``check()`` is true (at once if it already is)."""
        while not check():
            await self._event.wait()

    async def wait_for(self, get: Callable[[], T | None]) -> T:
        """Return ``get()`` once it is not ``None`` (at once if it already is not)."""
        while True:
            value = get()
            if value is not None:
                return value
            await self._event.wait()
