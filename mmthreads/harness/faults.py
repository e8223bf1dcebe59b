"""Fault plans: scripted or seeded-random faults for the harness servers.

A plan is a list of rules.  Each server asks the plan, at every *fault point*, what to do::

    outcome = plan.decide("http:POST /api/v4/posts", now=trio.current_time())

and acts on the outcome (``Ok`` means: behave normally).  Every outcome other than ``Ok`` is
recorded, so a test can assert exactly which faults happened.

Fault point names (``target``) used by the servers:

- ``http:<METHOD> <path>`` — an HTTP request, e.g. ``http:POST /api/v4/posts``,
  ``http:POST /session/ses_1/prompt_async``.
- ``ws:connect`` — a WebSocket upgrade; ``ws:event:<name>`` — an event about to be sent.
- ``sse:connect`` — an SSE subscription; ``sse:event:<type>`` — an event about to be sent;
  ``sse:heartbeat`` — a heartbeat about to be sent.

Rules match targets with shell-style globs (``http:* /api/v4/posts*``).  Plans load from TOML::

    seed = 7
    [[rules]]
    target = "http:POST /api/v4/posts"
    after = 2          # let the first two calls through
    times = 3          # then fail three calls
    outcome = { kind = "status", status = 429, retry_after = 1.5 }
"""

from __future__ import annotations

import fnmatch
import random
import tomllib
from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CloseSocket",
    "CutStream",
    "Delay",
    "Drop",
    "FaultPlan",
    "FaultRecord",
    "Ok",
    "Outcome",
    "PlanFile",
    "Rule",
    "Silence",
    "Status",
    "TerribleNetwork",
]


class _Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Policy for fault-plan types: immutable, keyword-only, strict when read from a file."""


class Ok(_Base, frozen=True, tag="ok", tag_field="kind"):
    """Behave normally."""


class Status(_Base, frozen=True, tag="status", tag_field="kind"):
    """Answer an HTTP request (or refuse a WebSocket/SSE connect) with this status."""

    status: int
    #: Seconds for the ``Retry-After`` header (429 and 503).
    retry_after: float | None = None
    #: Response body; the server's usual error body when ``None``.
    body: str | None = None


class Delay(_Base, frozen=True, tag="delay", tag_field="kind"):
    """Wait this many seconds, then behave normally."""

    seconds: float


class Drop(_Base, frozen=True, tag="drop", tag_field="kind"):
    """HTTP: close the connection without answering.  Event: never send it."""


class CloseSocket(_Base, frozen=True, tag="close_socket", tag_field="kind"):
    """Close the WebSocket with this code (1006: abruptly, without a close frame)."""

    code: int = 1006


class CutStream(_Base, frozen=True, tag="cut_stream", tag_field="kind"):
    """End an SSE stream (the client sees end of stream)."""


class Silence(_Base, frozen=True, tag="silence", tag_field="kind"):
    """Keep an SSE stream open but send nothing (no events, no heartbeats) for this long."""

    seconds: float


Outcome = Ok | Status | Delay | Drop | CloseSocket | CutStream | Silence

OK: Final = Ok()


class Rule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Apply ``outcome`` to matching fault points."""

    #: Glob over fault point names (see the module docstring).
    target: str
    outcome: Outcome
    #: Matches to let through before the rule applies.
    after: int = 0
    #: How many times the rule applies; 0 means every time.
    times: int = 1
    #: Seconds (server clock) the rule applies for, from its first use; 0: no limit.
    duration: float = 0.0
    # Bookkeeping, not configuration:
    seen: int = 0
    applied: int = 0
    started_at: float | None = None

    def _take(self, now: float) -> bool:
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.duration > 0:
            if self.started_at is None:
                self.started_at = now
            if now - self.started_at >= self.duration:
                return False
        elif self.times and self.applied >= self.times:
            return False
        self.applied += 1
        return True


class TerribleNetwork(_Base, frozen=True):
    """Seeded random faults, for soaks: each fault point draws from these probabilities."""

    #: Probability that an HTTP request fails with 503, 502 or 500.
    http_error: float = 0.0
    #: Probability that an HTTP request is answered 429 with a Retry-After of 0.1 to 2 s.
    rate_limited: float = 0.0
    #: Probability that any fault point is delayed by up to ``max_delay`` seconds.
    delay: float = 0.0
    max_delay: float = 0.5
    #: Probability that an event (WebSocket or SSE) is dropped.
    drop_event: float = 0.0
    #: Probability that a WebSocket is closed abnormally before an event.
    close_socket: float = 0.0
    #: Probability that an SSE stream is cut before an event.
    cut_stream: float = 0.0


class FaultRecord(msgspec.Struct, frozen=True):
    """One fault that happened: where, what, and when (server clock)."""

    target: str
    outcome: Outcome
    at: float


class PlanFile(_Base, frozen=True):
    """A fault plan as written in TOML."""

    rules: list[Rule] = msgspec.field(default_factory=list)
    terrible: TerribleNetwork | None = None
    seed: int = 0


class FaultPlan:
    """The faults a harness server injects, and the record of those that happened.

    An empty plan injects nothing.  Plans are not thread-safe; each belongs to one Trio run.
    """

    def __init__(
        self,
        rules: list[Rule] | None = None,
        *,
        terrible: TerribleNetwork | None = None,
        seed: int = 0,
    ) -> None:
        self.rules: list[Rule] = list(rules or [])
        self.terrible = terrible
        self.seed = seed
        #: Every fault that happened, in order.
        self.records: list[FaultRecord] = []
        self._random = random.Random(seed)

    def __repr__(self) -> str:
        terrible = self.terrible is not None
        n = len(self.records)
        return f"<FaultPlan rules={len(self.rules)} terrible={terrible} records={n}>"

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        """Read a plan from a TOML file (see the module docstring for the format)."""
        spec = msgspec.convert(tomllib.loads(path.read_text()), type=PlanFile)
        return cls(spec.rules, terrible=spec.terrible, seed=spec.seed)

    def add(
        self,
        target: str,
        outcome: Outcome,
        *,
        after: int = 0,
        times: int = 1,
        duration: float = 0.0,
    ) -> Rule:
        """Append a rule and return it."""
        rule = Rule(target=target, outcome=outcome, after=after, times=times, duration=duration)
        self.rules.append(rule)
        return rule

    def decide(self, target: str, *, now: float = 0.0) -> Outcome:
        """Return what to do at fault point ``target``; record it unless it is ``Ok``."""
        outcome: Outcome = OK
        for rule in self.rules:
            if fnmatch.fnmatchcase(target, rule.target) and rule._take(now):
                outcome = rule.outcome
                break
        else:
            if self.terrible is not None:
                outcome = self._draw(target)
        if not isinstance(outcome, Ok):
            self.records.append(FaultRecord(target, outcome, now))
        return outcome

    def recorded(self, target_glob: str = "*") -> list[FaultRecord]:
        """The faults that happened at fault points matching ``target_glob``."""
        return [r for r in self.records if fnmatch.fnmatchcase(r.target, target_glob)]

    def _draw(self, target: str) -> Outcome:
        t = self.terrible
        assert t is not None
        r = self._random
        is_event = ":event:" in target
        if target.startswith("http:"):
            if r.random() < t.http_error:
                return Status(status=r.choice((500, 502, 503)))
            if r.random() < t.rate_limited:
                return Status(status=429, retry_after=round(r.uniform(0.1, 2.0), 2))
        if is_event and r.random() < t.drop_event:
            return Drop()
        if is_event and target.startswith("ws:") and r.random() < t.close_socket:
            return CloseSocket(code=1006)
        if is_event and target.startswith("sse:") and r.random() < t.cut_stream:
            return CutStream()
        if r.random() < t.delay:
            return Delay(seconds=round(r.uniform(0.0, t.max_delay), 3))
        return OK
