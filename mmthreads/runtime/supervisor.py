"""Restarting failed tasks, with backoff and a bound: :func:`supervise` and :class:`Supervisor`.

What counts as a failure
------------------------
A task fails when it raises an :class:`Exception`, including an :class:`ExceptionGroup` (a
strict nursery inside the task wraps even a single error in one; a group whose members are all
``Exception`` is one failure).  Anything else is not ours to handle: ``trio.Cancelled`` must
reach the cancel scope that raised it, and ``KeyboardInterrupt`` must stop the program.  A task
that raises a mixed group (an error *and* a ``Cancelled``, e.g. it failed while its scope was
being cancelled) is not restarted: the error part is logged, the rest propagates unchanged.

A task that returns normally is finished; it is not restarted.

Backoff, the bound and the healthy-run reset
--------------------------------------------
After failure number *n* in a row, the supervisor sleeps ``policy.delay(n)`` and starts the task
again; failure number ``policy.max_attempts + 1`` ends it with :class:`StreamerGaveUp` (raised
from the last failure, and logged as an error).  ``max_attempts = 0`` restarts forever.

Failures only count "in a row" while the task keeps failing soon after each start.  An attempt is
*healthy* if it ran for at least ``healthy_after`` seconds before failing, by default
:func:`healthy_after` of the policy: its ``max_delay``, and at least one second.  After a healthy
attempt the count starts again from 1, so a task that fails once a day is restarted every day
with the shortest delay instead of giving up on the sixth day.  The longest backoff is the
natural yardstick: a task that outlived it was doing useful work, so its next failure is a new
incident rather than the same one again.  The one-second floor keeps a zero-delay policy from
counting an instant crash as a healthy run, which would restart it forever in a tight loop.

Isolation
---------
:class:`Supervisor` runs several supervised children in one nursery.  A child that gives up is
recorded, reported to ``on_give_up`` and leaves its siblings running: one session thread's
streaming task must never take down another's.
"""

from __future__ import annotations

import logging
import random as _random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, TypeVarTuple, Unpack

import msgspec
import trio

from mmthreads.errors import StreamerGaveUp

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from mmthreads.core.backoff import RetryPolicy

__all__ = [
    "MIN_HEALTHY_RUN",
    "Supervisor",
    "SupervisorStatistics",
    "healthy_after",
    "open_supervisor",
    "supervise",
]

logger = logging.getLogger(__name__)

PosArgsT = TypeVarTuple("PosArgsT")

#: The shortest run, in seconds, that counts as healthy whatever the policy says.
MIN_HEALTHY_RUN: Final = 1.0


def healthy_after(policy: RetryPolicy) -> float:
    """How long an attempt must run before failing for the failure count to start again.

    Args:
        policy: The task's retry policy.

    Returns:
        ``policy.max_delay``, but at least :data:`MIN_HEALTHY_RUN` seconds.
    """
    return max(policy.max_delay, MIN_HEALTHY_RUN)


async def supervise(
    fn: Callable[[Unpack[PosArgsT]], Awaitable[object]],
    *args: *PosArgsT,
    policy: RetryPolicy,
    name: str,
    healthy_run: float | None = None,
    rng: _random.Random | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``fn(*args)``, restarting it with backoff whenever it fails.

    Args:
        fn: The task to run; each attempt calls it afresh with ``args``.
        *args: Positional arguments for ``fn``.
        policy: Delays between attempts and the bound on failures in a row.
        name: Names the task in logs and in :class:`StreamerGaveUp`.
        healthy_run: Seconds an attempt must run for its failure to reset the count; defaults
            to :func:`healthy_after` of ``policy``.
        rng: Source of the policy's jitter; the ``random`` module's when omitted.
        task_status: Reports (with ``None``) that the first attempt is about to start.

    Raises:
        StreamerGaveUp: After ``policy.max_attempts`` restarts that each failed again soon.

    Anything that is not an ``Exception`` (``trio.Cancelled``, ``KeyboardInterrupt``, a mixed
    exception group) propagates at once and is never retried.
    """
    threshold = healthy_after(policy) if healthy_run is None else healthy_run
    random = rng.random if rng is not None else _random.random
    failures = 0
    delay = 0.0
    task_status.started()
    while True:
        started_at = trio.current_time()
        rest: BaseExceptionGroup[BaseException] | None = None
        try:
            await fn(*args)
        except Exception as exc:
            if trio.current_time() - started_at >= threshold:
                failures = 0
            failures += 1
            if policy.gives_up(failures):
                logger.exception("%s failed %d times in a row; giving up", name, failures)
                raise StreamerGaveUp(name) from exc
            delay = policy.delay(failures, random())
            logger.warning(
                "%s failed (%d in a row); restarting in %.3g s",
                name,
                failures,
                delay,
                exc_info=True,
            )
        except BaseExceptionGroup as group:
            # Every member an Exception would have made an ExceptionGroup, caught above; so
            # something here must propagate.  The errors beside it are reported, not retried:
            # whoever cancels us is stopping this task anyway.
            failed, rest = group.split(Exception)
            if failed is not None:
                logger.error("%s failed while being stopped; not restarting", name, exc_info=failed)
            if rest is None:  # pragma: no cover - ruled out by the except clause above
                raise
        else:
            logger.debug("%s finished", name)
            return
        if rest is not None:
            # Raised outside the handler so the traceback does not show the group twice.
            raise rest
        await trio.sleep(delay)
        logger.info("%s restarting", name)


class SupervisorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`Supervisor`'s children (for ``!status`` and tests).

    Attributes:
        restarts: Restarts so far, over all children.
        running: Children currently supervised (running or waiting to restart).
        gave_up: Children that failed too often in a row and were abandoned.
    """

    restarts: int
    running: int
    gave_up: int


class Supervisor:
    """Supervised children in one nursery; one child giving up leaves the others running.

    Open one with :func:`open_supervisor`.

    Args:
        nursery: Where the children run; the supervisor's owner keeps it open.
        on_give_up: Called with the child's name and the error when a child gives up.  It runs
            in the child's task and must not block; start a task for any I/O.  An exception it
            raises is logged and goes no further.
        rng: Source of the policies' jitter (see :func:`supervise`).
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        on_give_up: Callable[[str, StreamerGaveUp], object] | None = None,
        rng: _random.Random | None = None,
    ) -> None:
        self._nursery: Final = nursery
        self._on_give_up: Final = on_give_up
        self._rng: Final = rng
        self._restarts = 0
        self._running = 0
        self._gave_up = 0

    def __repr__(self) -> str:
        return (
            f"<Supervisor running={self._running} restarts={self._restarts} "
            f"gave_up={self._gave_up}>"
        )

    @property
    def cancel_scope(self) -> trio.CancelScope:
        """The scope of the children's nursery: cancel it to stop every child."""
        return self._nursery.cancel_scope

    def statistics(self) -> SupervisorStatistics:
        """How many children run, and how often they failed."""
        return SupervisorStatistics(
            restarts=self._restarts, running=self._running, gave_up=self._gave_up
        )

    async def start(
        self,
        fn: Callable[[Unpack[PosArgsT]], Awaitable[object]],
        *args: *PosArgsT,
        name: str,
        policy: RetryPolicy,
    ) -> None:
        """Supervise ``fn(*args)`` as a new child; returns once it counts as running.

        Args:
            fn: The task (see :func:`supervise`).
            *args: Positional arguments for ``fn``.
            name: Names the child in logs and in ``on_give_up``.
            policy: The child's backoff and bound.
        """
        await self._nursery.start(self._run_child, fn, args, name, policy)

    async def _run_child(
        self,
        fn: Callable[[Unpack[PosArgsT]], Awaitable[object]],
        args: tuple[*PosArgsT],
        name: str,
        policy: RetryPolicy,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        first = True

        async def attempt() -> None:
            # Counting attempts here keeps supervise() free of bookkeeping hooks.
            nonlocal first
            if not first:
                self._restarts += 1
            first = False
            await fn(*args)

        self._running += 1
        try:
            await supervise(
                attempt, policy=policy, name=name, rng=self._rng, task_status=task_status
            )
        except StreamerGaveUp as exc:
            # Contained here: re-raising would cancel the nursery, and every sibling with it.
            self._gave_up += 1
            self._report_give_up(name, exc)
        finally:
            self._running -= 1

    def _report_give_up(self, name: str, exc: StreamerGaveUp) -> None:
        if self._on_give_up is None:
            return
        try:
            self._on_give_up(name, exc)
        except Exception:
            logger.exception("on_give_up for %s failed", name)


@asynccontextmanager
async def open_supervisor(
    *,
    on_give_up: Callable[[str, StreamerGaveUp], object] | None = None,
    rng: _random.Random | None = None,
) -> AsyncIterator[Supervisor]:
    """Open a :class:`Supervisor`; leaving the block waits for every child to finish.

    Cancel ``supervisor.cancel_scope`` (or an enclosing scope) to stop the children.

    Args:
        on_give_up: See :class:`Supervisor`.
        rng: See :class:`Supervisor`.

    Yields:
        The supervisor, ready to :meth:`~Supervisor.start` children.
    """
    async with trio.open_nursery() as nursery:
        yield Supervisor(nursery, on_give_up=on_give_up, rng=rng)
