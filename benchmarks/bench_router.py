"""Router benchmark: the cost of one routing decision, per route kind, with 100k mappings.

Run it as ``python -m benchmarks.bench_router``; a combined runner calls ``run()``. The mapping
index is a plain dict from thread root post id to mapping (what the real index does for this
lookup), filled with 100,000 sessions in a realistic mix of states. Each figure is the best of
several timing runs divided by the calls per run. The target is 2 µs per decision.
"""

from __future__ import annotations

import random
import timeit
from functools import partial

from benchmarks.table import format_table
from mmthreads.core.auth import Authorization
from mmthreads.core.router import SenderInfo, route
from mmthreads.core.states import ThreadState
from mmthreads.mapping import ThreadMapping
from mmthreads.wire.mattermost import Post

MM_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
MAPPINGS = 100_000
CALLS = 100_000
RUNS = 5
TARGET_US = 2.0

Row = tuple[str, str]


class _Index:
    """A dict behind the router's ``ThreadLookup`` protocol."""

    __slots__ = ("_by_root",)

    def __init__(self, by_root: dict[str, ThreadMapping]) -> None:
        self._by_root = by_root

    def by_thread_root(self, post_id: str, /) -> ThreadMapping | None:
        return self._by_root.get(post_id)


def _mm_id(rng: random.Random) -> str:
    return "".join(rng.choices(MM_ALPHABET, k=26))


def _build(rng: random.Random) -> tuple[_Index, Authorization, dict[ThreadState, str], str, str]:
    owner, bot, dm = _mm_id(rng), _mm_id(rng), _mm_id(rng)
    states = (ThreadState.ENDED, ThreadState.ACTIVE, ThreadState.ORPHANED, ThreadState.DISCONNECTED)
    by_root: dict[str, ThreadMapping] = {}
    root_in_state: dict[ThreadState, str] = {}
    for i in range(MAPPINGS):
        root = _mm_id(rng)
        status = rng.choices(states, weights=(70, 15, 10, 5))[0]
        by_root[root] = ThreadMapping(
            session_id=f"ses_{i:026d}",
            thread_root_post_id=root,
            short_id=f"ses_{i % 10_000:04d}",
            mattermost_user_id=owner,
            dm_channel_id=dm,
            project_name="business-automation",
            directory="/home/dev/projects/business-automation",
            status=status,
            created_at="2026-01-15T14:30:00.000Z",
            last_activity_at="2026-01-15T15:45:00.000Z",
        )
        root_in_state.setdefault(status, root)
    auth = Authorization(
        owner_user_ids=frozenset({owner}), bot_user_id=bot, dm_channel_ids=frozenset({dm})
    )
    return _Index(by_root), auth, root_in_state, owner, dm


def run() -> list[Row]:
    """Time ``route`` for each main route kind; return (label, figure) rows."""
    rng = random.Random(7)
    index, auth, roots, owner, dm = _build(rng)
    sender = SenderInfo(channel_type="D", sender_name="@dev")

    def make(message: str, **fields: object) -> Post:
        values: dict[str, object] = {
            "id": _mm_id(rng),
            "channel_id": dm,
            "user_id": owner,
            "message": message,
            "create_at": 1768487400000,
            "update_at": 1768487400000,
            "props": {"disable_group_highlight": True},
        }
        values.update(fields)
        return Post(**values)  # type: ignore[arg-type]

    prompt_text = "Please run the test suite and fix the failing email pipeline test."
    cases = [
        ("RunCommand (!sessions, main DM)", make("!sessions")),
        ("UnknownCommand (!foo, main DM)", make("!foo")),
        ("RefusePrompt (text in main DM)", make(prompt_text)),
        ("UnknownThread (reply, unknown root)", make("hi", root_id=_mm_id(rng))),
        ("SessionEnded (reply, ended session)", make("hi", root_id=roots[ThreadState.ENDED])),
        ("Prompt (reply, active session)", make(prompt_text, root_id=roots[ThreadState.ACTIVE])),
        (
            "Prompt (reply, disconnected session)",
            make(prompt_text, root_id=roots[ThreadState.DISCONNECTED], file_ids=["f1"]),
        ),
        (
            "Ignored (own post, from_bot)",
            make("streamed output", user_id=auth.bot_user_id, props={"from_bot": "true"}),
        ),
        ("Ignored (not an authorized user)", make("hello", user_id=_mm_id(rng))),
    ]
    rows: list[Row] = [("mappings in the index", f"{MAPPINGS:,}")]
    worst = 0.0
    for label, post in cases:
        timer = timeit.Timer(partial(route, post, threads=index, auth=auth, sender=sender))
        best = min(timer.repeat(repeat=RUNS, number=CALLS)) / CALLS * 1e6
        worst = max(worst, best)
        rows.append((f"route: {label}", f"{best:.2f} µs/call"))
    verdict = "met" if worst <= TARGET_US else "MISSED"
    rows.append((f"slowest decision vs target {TARGET_US:g} µs", f"{worst:.2f} µs ({verdict})"))
    return rows


if __name__ == "__main__":
    print(format_table(run()))
