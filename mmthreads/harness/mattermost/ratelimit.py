"""Rate limiting like ``app/ratelimit.go``: GCRA over an in-memory store (sans-IO).

Off by default, as on a real server.  When on, every response carries ``X-Ratelimit-Limit``
(burst + 1), ``X-Ratelimit-Remaining`` and ``X-Ratelimit-Reset`` (seconds until the bucket is full
again, relative), and a refused request gets 429 with the plain-text body ``limit exceeded`` and
``Retry-After``.
"""

from __future__ import annotations

import math

import msgspec

__all__ = ["RateLimit", "RateLimitDecision", "RateLimiter"]


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """``RateLimitSettings``: ``per_sec`` sustained requests with bursts of ``max_burst``."""

    per_sec: float = 10.0
    max_burst: int = 100
    #: Key by the request's token (``VaryByUser``); otherwise by client address.
    vary_by_user: bool = True


class RateLimitDecision(msgspec.Struct, frozen=True):
    """The outcome for one request and the headers to send."""

    limited: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float

    def headers(self) -> list[tuple[str, str]]:
        """The ``X-Ratelimit-*`` headers (and ``Retry-After`` when limited)."""
        headers = [
            ("X-Ratelimit-Limit", str(self.limit)),
            ("X-Ratelimit-Remaining", str(self.remaining)),
            ("X-Ratelimit-Reset", str(math.ceil(self.reset_after))),
        ]
        if self.limited:
            headers.append(("Retry-After", str(math.ceil(self.retry_after))))
        return headers


class RateLimiter:
    """The generic cell rate algorithm of the ``throttled`` library the server uses."""

    def __init__(self, config: RateLimit) -> None:
        self.config = config
        self._interval = 1.0 / config.per_sec
        self._tolerance = self._interval * (config.max_burst + 1)
        self._tat: dict[str, float] = {}

    def check(self, key: str, now: float) -> RateLimitDecision:
        """Count one request for ``key`` at ``now`` (seconds, any monotonic clock)."""
        limit = self.config.max_burst + 1
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + self._interval
        allow_at = new_tat - self._tolerance
        if now < allow_at:
            ttl = tat - now
            remaining = self._remaining(ttl)
            return RateLimitDecision(True, limit, remaining, ttl, allow_at - now)
        self._tat[key] = new_tat
        ttl = new_tat - now
        return RateLimitDecision(False, limit, self._remaining(ttl), ttl, 0.0)

    def _remaining(self, ttl: float) -> int:
        spare = self._tolerance - ttl
        if spare <= -self._interval:
            return 0
        # A small epsilon keeps float noise from costing a whole slot.
        return max(0, int(spare / self._interval + 1e-9))
