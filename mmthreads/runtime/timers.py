"""Named timers for a session runner: each one a child task with its own cancel scope.

A runner handles one input at a time, so a timer cannot call back into it; instead a timer that
expires *delivers* a :class:`TimerFired` through a callable the runner gives (in practice: the
send side of the runner's own inbox), and the runner handles it like any other input.

Timers are keyed by name.  Starting a timer whose name is already running replaces it, and
:meth:`Timers.cancel` stops it.  A timer may have fired, with its :class:`TimerFired` still
waiting in the inbox, when the runner replaces or cancels it; every start therefore gets a new
generation number, and :meth:`Timers.accept` tells the runner whether a firing is still the
current one or a stale leftover to ignore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec
import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["TimerFired", "Timers"]


class TimerFired(msgspec.Struct, frozen=True, kw_only=True):
    """A named timer expired.

    Attributes:
        name: The timer's name, as given to :meth:`Timers.start_at`.
        generation: Which start of that name fired (see :meth:`Timers.accept`).
    """

    name: str
    generation: int


class Timers:
    """The named timers of one runner, as child tasks of a nursery the runner owns.

    Args:
        nursery: Where the timer tasks run; cancelling it stops every timer.
        deliver: Called with the :class:`TimerFired` when a timer expires; it may block (e.g.
            on a full inbox), which delays nothing but that one delivery.
    """

    def __init__(
        self, nursery: trio.Nursery, deliver: Callable[[TimerFired], Awaitable[None]]
    ) -> None:
        self._nursery: Final = nursery
        self._deliver: Final = deliver
        self._generation = 0
        # name -> (generation, scope).  An entry stays until its firing is accepted or the
        # timer is cancelled, so "pending" also covers a firing still on its way.
        self._pending: dict[str, tuple[int, trio.CancelScope]] = {}

    def __repr__(self) -> str:
        return f"<Timers pending={sorted(self._pending)}>"

    def is_pending(self, name: str) -> bool:
        """Whether timer ``name`` runs, or fired and its firing was not accepted yet."""
        return name in self._pending

    async def start_at(self, name: str, deadline: float) -> None:
        """Start timer ``name`` to fire at ``deadline``, replacing a running one of that name.

        Args:
            name: The timer's key.
            deadline: When to fire, in :func:`trio.current_time` seconds.  A deadline takes
                exact times, which an interval added to the current time would round.
        """
        self.cancel(name)
        self._generation += 1
        generation = self._generation
        scope: trio.CancelScope = await self._nursery.start(
            self._run, TimerFired(name=name, generation=generation), deadline
        )
        self._pending[name] = (generation, scope)

    async def start_after(self, name: str, delay: float) -> None:
        """Start timer ``name`` to fire ``delay`` seconds from now (see :meth:`start_at`)."""
        await self.start_at(name, trio.current_time() + delay)

    def cancel(self, name: str) -> bool:
        """Stop timer ``name``; a firing of it still in the inbox becomes stale.

        Returns:
            Whether such a timer was pending.
        """
        entry = self._pending.pop(name, None)
        if entry is None:
            return False
        entry[1].cancel()
        return True

    def cancel_all(self) -> None:
        """Stop every timer."""
        for name in list(self._pending):
            self.cancel(name)

    def accept(self, fired: TimerFired) -> bool:
        """Take a firing the runner received: ``True`` if it is current, ``False`` if stale.

        A current firing ends its timer (it is no longer pending); a stale one, of a timer
        cancelled or restarted after it fired, changes nothing.
        """
        entry = self._pending.get(fired.name)
        if entry is None or entry[0] != fired.generation:
            return False
        del self._pending[fired.name]
        return True

    async def _run(
        self,
        fired: TimerFired,
        deadline: float,
        *,
        task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await trio.sleep_until(deadline)
            await self._deliver(fired)
