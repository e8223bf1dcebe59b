"""The flood limit: exact admissions of a token bucket per user, one notice per episode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmthreads.core.flood import Admission, FloodGate, flood_notice


def _run(gate: FloodGate, times: list[float], user: str = "u") -> list[Admission]:
    return [gate.admit(user, now) for now in times]


def test_a_burst_passes_then_posts_are_dropped_with_one_notice() -> None:
    gate = FloodGate(burst=3, refill_interval=2.0)
    results = _run(gate, [0.0] * 6)
    assert [r.allowed for r in results] == [True, True, True, False, False, False]
    assert [r.notify for r in results] == [False, False, False, True, False, False]
    assert results[3].retry_after == pytest.approx(2.0)


def test_tokens_come_back_one_per_interval() -> None:
    gate = FloodGate(burst=2, refill_interval=3.0)
    assert [r.allowed for r in _run(gate, [0.0, 0.0, 0.0])] == [True, True, False]
    dropped = gate.admit("u", 1.5)
    assert not dropped.allowed
    assert not dropped.notify  # still the same episode
    assert dropped.retry_after == pytest.approx(1.5)
    assert gate.admit("u", 3.0).allowed  # one token regained
    assert not gate.admit("u", 3.0).allowed


def test_a_new_episode_gets_a_new_notice() -> None:
    gate = FloodGate(burst=1, refill_interval=1.0)
    assert [(r.allowed, r.notify) for r in _run(gate, [0.0, 0.1, 0.2])] == [
        (True, False),
        (False, True),
        (False, False),
    ]
    assert gate.admit("u", 1.0).allowed  # the episode ends
    assert gate.admit("u", 1.0) == Admission(allowed=False, notify=True, retry_after=1.0)


def test_users_have_their_own_buckets() -> None:
    gate = FloodGate(burst=1, refill_interval=10.0)
    assert gate.admit("alice", 0.0).allowed
    assert not gate.admit("alice", 0.0).allowed
    assert gate.admit("bob", 0.0).allowed


def test_time_going_backwards_does_not_refill() -> None:
    gate = FloodGate(burst=1, refill_interval=1.0)
    assert gate.admit("u", 100.0).allowed
    assert not gate.admit("u", 50.0).allowed
    assert not gate.admit("u", 100.5).allowed
    assert gate.admit("u", 101.0).allowed


def test_a_full_bucket_does_not_overflow() -> None:
    gate = FloodGate(burst=2, refill_interval=1.0)
    assert [r.allowed for r in _run(gate, [1000.0, 1000.0, 1000.0])] == [True, True, False]


@pytest.mark.parametrize(("burst", "interval"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_a_bad_limit_is_refused(burst: int, interval: float) -> None:
    with pytest.raises(ValueError, match="bad flood limit"):
        FloodGate(burst=burst, refill_interval=interval)


def test_the_notice() -> None:
    # 2026-01-15 14:30:04.200 UTC: rounded up to the next whole second.
    text = flood_notice(burst=10, refill_interval=3.0, until_ms=1768487404200)
    assert text == (
        ":warning: **Slow down** — more than 10 posts in a row; posts are not forwarded until "
        "14:30:05 UTC (then one every 3s). Repost what you still want sent."
    )


@given(
    st.integers(min_value=1, max_value=20),
    st.floats(min_value=0.1, max_value=10.0),
    st.lists(st.floats(min_value=0.0, max_value=0.5), max_size=60),
)
def test_never_more_than_burst_plus_refills(burst: int, interval: float, gaps: list[float]) -> None:
    gate = FloodGate(burst=burst, refill_interval=interval)
    now, allowed, dropped_run = 0.0, 0, False
    for gap in gaps:
        now += gap
        result = gate.admit("u", now)
        allowed += result.allowed
        # One notice per run of dropped posts, on its first post.
        assert result.notify == (not result.allowed and not dropped_run)
        dropped_run = not result.allowed
    assert allowed <= burst + now / interval + 1e-9
