"""The supervisor: exact restart times, the bound, the healthy-run reset, and what it never catches.

Every test runs on ``autojump_clock``: sleeps take no real time and the asserted times are exact.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import msgspec
import pytest
import trio

from mmthreads.core.backoff import RetryPolicy
from mmthreads.errors import StreamerGaveUp
from mmthreads.runtime.supervisor import (
    MIN_HEALTHY_RUN,
    SupervisorStatistics,
    healthy_after,
    open_supervisor,
    supervise,
)

if TYPE_CHECKING:
    from trio.testing import MockClock

#: 1, 2, 4, 8… seconds between attempts, at most three restarts.
POLICY = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=60.0, max_attempts=3)


class Boom(Exception):
    """What the supervised tasks fail with."""


class Stop(BaseException):
    """Stands in for KeyboardInterrupt, which would stop pytest itself."""


class Task:
    """A supervised task that records when each attempt started, then does what it is told."""

    def __init__(self, *behaviours: float | None) -> None:
        # Per attempt: fail after that many seconds; None runs until cancelled.  Attempts past
        # the list repeat the last behaviour.
        self.behaviours = behaviours or (0.0,)
        self.starts: list[float] = []
        self.started = trio.Event()

    async def __call__(self, label: str = "") -> None:
        self.starts.append(trio.current_time())
        self.started.set()
        behaviour = self.behaviours[min(len(self.starts), len(self.behaviours)) - 1]
        if behaviour is None:
            await trio.sleep_forever()
        await trio.sleep(behaviour)
        raise Boom(f"attempt {len(self.starts)} {label}".strip())


# --- restarts, backoff and the bound -------------------------------------------------------------


async def test_restarts_after_1_2_and_4_seconds_then_gives_up(
    autojump_clock: MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = Task()
    with pytest.raises(StreamerGaveUp) as caught:
        await supervise(task, policy=POLICY, name="ses_ab12")

    assert task.starts == [0.0, 1.0, 3.0, 7.0]
    assert trio.current_time() == 7.0
    assert caught.value.name == "ses_ab12"
    assert isinstance(caught.value.__cause__, Boom)
    assert str(caught.value.__cause__) == "attempt 4"
    failures = [r for r in caplog.records if r.name == "mmthreads.runtime.supervisor"]
    assert [r.levelno for r in failures if r.exc_info] == [logging.WARNING] * 3 + [logging.ERROR]
    assert all("ses_ab12" in r.getMessage() for r in failures if r.exc_info)
    assert "giving up" in failures[-1].getMessage()


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
async def test_gives_up_after_max_attempts_restarts(
    autojump_clock: MockClock, max_attempts: int
) -> None:
    policy = RetryPolicy(initial_delay=1.0, factor=1.0, max_delay=1.0, max_attempts=max_attempts)
    task = Task()
    with pytest.raises(StreamerGaveUp):
        await supervise(task, policy=policy, name="t")
    assert len(task.starts) == max_attempts + 1
    assert trio.current_time() == float(max_attempts)


async def test_zero_max_attempts_restarts_forever(autojump_clock: MockClock) -> None:
    policy = RetryPolicy(initial_delay=1.0, factor=1.0, max_delay=1.0, max_attempts=0)
    task = Task()
    with trio.move_on_after(100.5):
        await supervise(task, policy=policy, name="t")
    assert len(task.starts) == 101


async def test_a_healthy_run_resets_the_failure_count(autojump_clock: MockClock) -> None:
    # max_delay 4: a run of at least 4 s is healthy.  Two quick failures, a 5 s run, then quick
    # failures again: the count restarts from 1, so the delays are 1, 2, (reset) 1, 2 and the
    # task gives up on the second quick failure after the reset, not the first.
    policy = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=4.0, max_attempts=2)
    task = Task(0.0, 0.0, 5.0, 0.0)
    with pytest.raises(StreamerGaveUp):
        await supervise(task, policy=policy, name="t")
    assert task.starts == [0.0, 1.0, 3.0, 9.0, 11.0]
    assert trio.current_time() == 11.0


async def test_a_run_just_short_of_healthy_does_not_reset(autojump_clock: MockClock) -> None:
    policy = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=4.0, max_attempts=2)
    task = Task(0.0, 3.5)
    with pytest.raises(StreamerGaveUp):
        await supervise(task, policy=policy, name="t")
    assert task.starts == [0.0, 1.0, 6.5]


def test_healthy_means_the_longest_backoff_but_at_least_a_second() -> None:
    assert healthy_after(POLICY) == 60.0
    assert healthy_after(RetryPolicy(initial_delay=0.0, max_delay=0.0)) == MIN_HEALTHY_RUN


async def test_a_task_that_returns_is_not_restarted(autojump_clock: MockClock) -> None:
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    await supervise(once, policy=POLICY, name="t")
    assert calls == 1
    assert trio.current_time() == 0.0


async def test_passes_the_arguments_to_every_attempt(autojump_clock: MockClock) -> None:
    task = Task()
    with pytest.raises(StreamerGaveUp) as caught:
        await supervise(task, "x", policy=POLICY, name="t")
    assert str(caught.value.__cause__) == "attempt 4 x"


async def test_jitter_uses_the_given_random_source(autojump_clock: MockClock) -> None:
    policy = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=60.0, max_attempts=2, jitter=0.5)
    task = Task()
    with pytest.raises(StreamerGaveUp):
        await supervise(task, policy=policy, name="t", rng=random.Random(7))
    draws = random.Random(7)
    first = policy.delay(1, draws.random())
    second = policy.delay(2, draws.random())
    assert task.starts == [0.0, first, first + second]


# --- what is not a failure ---------------------------------------------------------------------


async def test_cancellation_while_running_is_not_swallowed(autojump_clock: MockClock) -> None:
    task = Task(None)
    with trio.move_on_after(2.5) as scope:
        await supervise(task, policy=POLICY, name="t")
    assert scope.cancelled_caught
    assert task.starts == [0.0]
    assert trio.current_time() == 2.5


async def test_cancellation_during_the_backoff_is_not_swallowed(autojump_clock: MockClock) -> None:
    task = Task()
    with trio.move_on_after(2.0) as scope:
        await supervise(task, policy=POLICY, name="t")
    assert scope.cancelled_caught
    assert task.starts == [0.0, 1.0]  # the second backoff (2 s) was cut short
    assert trio.current_time() == 2.0


async def test_a_base_exception_propagates_at_once(autojump_clock: MockClock) -> None:
    calls = 0

    async def interrupted() -> None:
        nonlocal calls
        calls += 1
        raise Stop

    with pytest.raises(Stop):
        await supervise(interrupted, policy=POLICY, name="t")
    assert calls == 1


async def test_a_group_of_exceptions_is_a_failure(autojump_clock: MockClock) -> None:
    attempts = 0

    async def nursery_inside() -> None:
        nonlocal attempts
        attempts += 1

        async def fail() -> None:
            raise Boom

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail)

    with pytest.raises(StreamerGaveUp) as caught:
        await supervise(nursery_inside, policy=POLICY, name="t")
    assert attempts == 4
    assert pytest.RaisesGroup(Boom).matches(caught.value.__cause__)


async def test_a_mixed_group_is_not_retried_and_only_the_rest_propagates(
    autojump_clock: MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def mixed() -> None:
        nonlocal calls
        calls += 1
        raise BaseExceptionGroup("both", [Boom("lost"), Stop()])

    with pytest.RaisesGroup(Stop):
        await supervise(mixed, policy=POLICY, name="mixed-task")
    assert calls == 1
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.levelno == logging.ERROR
    assert "mixed-task" in record.getMessage()
    assert pytest.RaisesGroup(Boom).matches(record.exc_info[1])  # type: ignore[index]


# --- the Supervisor: several children, statistics, isolation ---------------------------------


async def test_statistics_count_restarts_running_and_given_up(autojump_clock: MockClock) -> None:
    flaky = Task(0.0, 0.0, None)  # fails twice, then runs
    async with open_supervisor() as supervisor:
        assert supervisor.statistics() == SupervisorStatistics(restarts=0, running=0, gave_up=0)
        await supervisor.start(flaky, name="flaky", policy=POLICY)
        assert supervisor.statistics().running == 1
        await trio.sleep(10)
        assert flaky.starts == [0.0, 1.0, 3.0]
        assert supervisor.statistics() == SupervisorStatistics(restarts=2, running=1, gave_up=0)
        supervisor.cancel_scope.cancel()
    assert supervisor.statistics() == SupervisorStatistics(restarts=2, running=0, gave_up=0)


async def test_statistics_are_a_frozen_snapshot(autojump_clock: MockClock) -> None:
    stats = SupervisorStatistics(restarts=1, running=2, gave_up=3)
    with pytest.raises(AttributeError):
        stats.restarts = 5  # type: ignore[misc]
    assert msgspec.structs.asdict(stats) == {"restarts": 1, "running": 2, "gave_up": 3}


async def test_a_child_giving_up_leaves_its_sibling_running(autojump_clock: MockClock) -> None:
    gave_up: list[tuple[str, StreamerGaveUp, float]] = []
    doomed, steady = Task(), Task(None)
    async with open_supervisor(
        on_give_up=lambda name, exc: gave_up.append((name, exc, trio.current_time()))
    ) as supervisor:
        await supervisor.start(steady, name="steady", policy=POLICY)
        await supervisor.start(doomed, name="doomed", policy=POLICY)
        await trio.sleep(20)

        [(name, exc, when)] = gave_up
        assert (name, exc.name, when) == ("doomed", "doomed", 7.0)
        assert isinstance(exc.__cause__, Boom)
        assert steady.starts == [0.0]  # never disturbed
        assert supervisor.statistics() == SupervisorStatistics(restarts=3, running=1, gave_up=1)
        supervisor.cancel_scope.cancel()
    assert trio.current_time() == 20.0


async def test_a_failing_give_up_callback_is_logged_and_contained(
    autojump_clock: MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(name: str, exc: StreamerGaveUp) -> None:
        raise RuntimeError("callback bug")

    steady = Task(None)
    policy = RetryPolicy(initial_delay=1.0, max_attempts=1)
    async with open_supervisor(on_give_up=broken) as supervisor:
        await supervisor.start(steady, name="steady", policy=policy)
        await supervisor.start(Task(), name="doomed", policy=policy)
        await trio.sleep(5)
        assert supervisor.statistics() == SupervisorStatistics(restarts=1, running=1, gave_up=1)
        supervisor.cancel_scope.cancel()
    assert any("on_give_up for doomed failed" in r.getMessage() for r in caplog.records)


async def test_children_that_finish_leave_the_supervisor(autojump_clock: MockClock) -> None:
    async def quick() -> None:
        await trio.sleep(1)

    async with open_supervisor() as supervisor:
        await supervisor.start(quick, name="a", policy=POLICY)
        await supervisor.start(quick, name="b", policy=POLICY)
        assert supervisor.statistics().running == 2
    assert supervisor.statistics() == SupervisorStatistics(restarts=0, running=0, gave_up=0)
    assert trio.current_time() == 1.0
    assert repr(supervisor) == "<Supervisor running=0 restarts=0 gave_up=0>"
