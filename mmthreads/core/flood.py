"""The flood limit: a token bucket per user, deciding which of an owner's posts are handled.

Theory of operation
-------------------
Every post of an owner that the bridge would act on (a prompt, a command, or a post that gets a
refusal) takes one token from that owner's bucket.  A bucket holds at most ``burst`` tokens and
gains one every ``refill_interval`` seconds; it starts full.  So a person typing at any human
pace never notices it, while a runaway client, a script or a paste split into dozens of posts is
cut off after ``burst`` posts and then let through at one post per ``refill_interval``.

A post that finds the bucket empty is not forwarded.  The first such post of a *flood episode*
gets one notice (:func:`flood_notice`), where it was written; the following ones are dropped
silently, so that a flood of posts does not become a flood of answers.  The episode ends with the
next post that is let through; a later flood gets a notice again.

Time comes in as an argument (seconds, any origin, per user never going backwards): the core
never reads the clock.  The runtime passes the posts' own creation times, so posts written while
the bridge was away are judged by when they were written, not by when they arrive.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec

__all__ = ["FLOOD_HEADING", "Admission", "FloodGate", "flood_notice"]

#: The heading of the notice a flood gets.
FLOOD_HEADING: Final = ":warning: **Slow down**"


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with one post.

    Attributes:
        allowed: Handle the post (a token was taken).
        notify: The post is dropped and is the first of its flood episode: post the notice.
        retry_after: Seconds until the next post would be let through (0 when allowed).
    """

    allowed: bool
    notify: bool = False
    retry_after: float = 0.0


_ALLOWED: Final = Admission(allowed=True)


class _Bucket:
    __slots__ = ("at", "tokens", "warned")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at
        self.warned = False


class FloodGate:
    """Token buckets, one per user.

    Args:
        burst: Posts accepted in a row from a full bucket (the bucket's capacity).
        refill_interval: Seconds per regained token.

    Raises:
        ValueError: If ``burst`` is below 1 or ``refill_interval`` is not positive.
    """

    def __init__(self, *, burst: int, refill_interval: float) -> None:
        if burst < 1 or not refill_interval > 0:
            raise ValueError(f"bad flood limit: burst={burst}, refill_interval={refill_interval}")
        self.burst: Final = burst
        self.refill_interval: Final = refill_interval
        self._buckets: dict[str, _Bucket] = {}

    def __repr__(self) -> str:
        return (
            f"<FloodGate burst={self.burst} refill_interval={self.refill_interval}"
            f" users={len(self._buckets)}>"
        )

    def admit(self, user_id: str, now: float) -> Admission:
        """Take a token for one post of ``user_id`` at time ``now`` (seconds), if there is one.

        Args:
            user_id: Whose bucket.
            now: The post's time; earlier than a previous call for this user counts as that
                call's time (the bucket never refills backwards, nor twice).

        Returns:
            Whether to handle the post, and whether to post the flood notice.
        """
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(float(self.burst), now)
        elapsed = now - bucket.at
        if elapsed > 0:
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed / self.refill_interval)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.warned = False
            return _ALLOWED
        retry_after = (1.0 - bucket.tokens) * self.refill_interval
        notify = not bucket.warned
        bucket.warned = True
        return Admission(allowed=False, notify=notify, retry_after=retry_after)


def flood_notice(*, burst: int, refill_interval: float, until_ms: int) -> str:
    """The notice for the first dropped post of a flood.

    Args:
        burst: The limit's burst, to say what happened.
        refill_interval: Seconds per regained post.
        until_ms: When the next post will be let through (epoch ms).

    Returns:
        e.g. ``:warning: **Slow down** — more than 10 posts in a row; posts are not forwarded
        until 14:30:05 UTC (then one every 3s). Repost what you still want sent.``
    """
    # Rounded up to the second: "until 14:30:05" must not be a moment too early.
    seconds = -(-until_ms // 1000)
    until = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%H:%M:%S")
    pace = f"{refill_interval:g}s"
    return (
        f"{FLOOD_HEADING} — more than {burst} posts in a row; posts are not forwarded until "
        f"{until} UTC (then one every {pace}). Repost what you still want sent."
    )
