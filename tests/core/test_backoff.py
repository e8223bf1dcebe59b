"""Retry timing: exact delays, caps, jitter bounds, give-up, Retry-After."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmthreads.core.backoff import RetryPolicy, parse_retry_after


def test_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay=1, factor=2, max_delay=10)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_a_huge_attempt_count_stays_at_the_cap() -> None:
    assert RetryPolicy(max_delay=30).delay(10_000) == 30


def test_jitter_spreads_within_its_fraction() -> None:
    policy = RetryPolicy(initial_delay=4, factor=1, jitter=0.25)
    assert policy.delay(1, random=0.0) == 3.0
    assert policy.delay(1, random=0.5) == 4.0
    assert policy.delay(1, random=0.999999) == pytest.approx(5.0, abs=1e-5)


@pytest.mark.parametrize(
    ("limit", "attempt", "gives_up"), [(0, 10**6, False), (3, 3, False), (3, 4, True)]
)
def test_give_up_after_the_bound(limit: int, attempt: int, gives_up: bool) -> None:
    assert RetryPolicy(max_attempts=limit).gives_up(attempt) is gives_up


@pytest.mark.parametrize(
    "kwargs", [{"factor": 0.5}, {"jitter": 2.0}, {"initial_delay": -1}, {"max_attempts": -1}]
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        (None, None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_needs_now() -> None:
    header = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after(header) is None
    assert parse_retry_after(header, now_s=1445412480.0) == 10.0


@given(st.integers(min_value=1, max_value=10**9), st.floats(min_value=0, max_value=0.999))
def test_delays_are_never_negative_nor_above_cap_plus_jitter(attempt: int, r: float) -> None:
    policy = RetryPolicy(initial_delay=0.5, factor=3, max_delay=20, jitter=0.2)
    assert 0 <= policy.delay(attempt, r) <= 24.0
