"""Retry timing, as pure code: capped exponential backoff and ``Retry-After`` parsing.

The runtime sleeps; this module only says for how long.  Jitter is optional and takes its random
number as an argument, so tests stay deterministic.
"""

from __future__ import annotations

import email.utils
import math

import msgspec

__all__ = ["RetryPolicy", "parse_retry_after"]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long to wait before retry number ``attempt`` (1-based), and when to give up.

    Attributes:
        initial_delay: Seconds before the first retry.
        factor: Each retry waits this much longer than the previous one.
        max_delay: The wait never exceeds this (seconds).
        max_attempts: Give up after this many retries; 0 retries forever.
        jitter: Fraction of the delay that is randomised (0 to 1): spreads reconnects of many
            clients after a shared outage.
    """

    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    max_attempts: int = 0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative")

    def delay(self, attempt: int, random: float = 0.5) -> float:
        """Seconds to wait before retry ``attempt`` (1 is the first retry).

        Args:
            attempt: Which retry this is, from 1.
            random: A number in [0, 1) used for the jitter (0.5 means none).
        """
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        # Compare in log space so a huge attempt count cannot overflow the power.
        exponent = attempt - 1
        if self.factor > 1 and exponent * math.log(self.factor) > math.log(
            max(self.max_delay, 1e-9) / max(self.initial_delay, 1e-9)
        ):
            base = self.max_delay
        else:
            base = min(self.max_delay, self.initial_delay * self.factor**exponent)
        return max(0.0, base * (1 + self.jitter * (2 * random - 1)))

    def gives_up(self, attempt: int) -> bool:
        """Whether retry ``attempt`` is beyond the bound."""
        return self.max_attempts > 0 and attempt > self.max_attempts


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, or ``None`` if absent or unreadable.

    Accepts delta-seconds (also fractional, as some servers send) and HTTP dates; a date needs
    ``now_s`` (epoch seconds) because this module never reads the clock.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        if now_s is None:
            return None
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now_s)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)
