"""Fixtures for the runtime tests: a ``trio.fail_after`` watchdog on every test."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Final

import pytest
import trio

#: Seconds a runtime test may take.  Under ``autojump_clock`` these are virtual seconds, so a
#: test that deadlocks fails at once (the clock jumps straight to the watchdog's deadline)
#: instead of hanging; every scenario here ends long before it.
WATCHDOG_SECONDS: Final = 600.0


@pytest.fixture(autouse=True)
def watchdog(request: pytest.FixtureRequest) -> None:
    """Run every async test inside ``trio.fail_after(WATCHDOG_SECONDS)``.

    pytest-trio runs only the fixtures a test names in its signature, and each in a task of
    its own, so neither an autouse async fixture nor a cancel scope opened in one would cover
    the test.  This fixture therefore wraps the test function itself, before pytest-trio starts
    it; a stuck test fails with ``trio.TooSlowError``.
    """
    item = request.node
    assert isinstance(item, pytest.Function)
    test = item.obj
    if not inspect.iscoroutinefunction(test):
        return

    @functools.wraps(test)
    async def guarded(**kwargs: Any) -> None:
        with trio.fail_after(WATCHDOG_SECONDS):
            await test(**kwargs)

    item.obj = guarded
