"""Fault plans: rule matching, counting, durations, TOML, and the seeded terrible network."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import pytest

from mmthreads.harness.faults import (
    CloseSocket,
    CutStream,
    Delay,
    Drop,
    FaultPlan,
    Ok,
    Silence,
    Status,
    TerribleNetwork,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_an_empty_plan_injects_and_records_nothing() -> None:
    plan = FaultPlan()
    assert plan.decide("http:GET /api/v4/users/me") == Ok()
    assert plan.records == []


@pytest.mark.parametrize(
    ("after", "times", "expected"),
    [
        (0, 1, [True, False, False, False, False]),
        (2, 1, [False, False, True, False, False]),
        (1, 2, [False, True, True, False, False]),
        (3, 0, [False, False, False, True, True]),
    ],
)
def test_after_and_times_select_which_calls_fail(
    after: int, times: int, expected: list[bool]
) -> None:
    plan = FaultPlan()
    plan.add("http:POST /api/v4/posts", Status(status=500), after=after, times=times)
    got = [plan.decide("http:POST /api/v4/posts") != Ok() for _ in expected]
    assert got == expected
    assert len(plan.recorded()) == sum(expected)


def test_globs_match_only_their_targets_and_first_rule_wins() -> None:
    plan = FaultPlan()
    plan.add("http:* /session/*/prompt_async", Status(status=503), times=0)
    plan.add("http:*", Delay(seconds=1.0), times=0)
    assert plan.decide("http:POST /session/ses_1/prompt_async") == Status(status=503)
    assert plan.decide("http:GET /session") == Delay(seconds=1.0)
    assert plan.decide("sse:connect") == Ok()


def test_a_duration_rule_applies_for_that_long_from_its_first_use() -> None:
    plan = FaultPlan()
    plan.add("ws:connect", Status(status=503), duration=5.0)
    at = [0.0, 2.0, 4.9, 5.0, 9.0]
    got = [plan.decide("ws:connect", now=t) for t in (100 + x for x in at)]
    assert got == [Status(status=503)] * 3 + [Ok()] * 2
    assert [r.at for r in plan.recorded("ws:*")] == [100.0, 102.0, 104.9]


def test_plans_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "drill.toml"
    path.write_text(
        """
seed = 3
[[rules]]
target = "http:POST /api/v4/posts"
after = 1
times = 2
outcome = { kind = "status", status = 429, retry_after = 1.5 }
[[rules]]
target = "ws:event:posted"
outcome = { kind = "close_socket", code = 1011 }
[[rules]]
target = "sse:event:*"
outcome = { kind = "cut_stream" }
[[rules]]
target = "sse:heartbeat"
outcome = { kind = "silence", seconds = 30 }
[[rules]]
target = "http:GET /x"
outcome = { kind = "drop" }
"""
    )
    plan = FaultPlan.load(path)
    assert plan.seed == 3
    assert [plan.decide("http:POST /api/v4/posts") for _ in range(4)] == [
        Ok(),
        Status(status=429, retry_after=1.5),
        Status(status=429, retry_after=1.5),
        Ok(),
    ]
    assert plan.decide("ws:event:posted") == CloseSocket(code=1011)
    assert plan.decide("sse:event:message.part.delta") == CutStream()
    assert plan.decide("sse:heartbeat") == Silence(seconds=30)
    assert plan.decide("http:GET /x") == Drop()


def test_a_misspelt_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[rules]]\ntarget = "x"\noutcome = { kind = "status", stauts = 500 }\n')
    with pytest.raises(msgspec.ValidationError):
        FaultPlan.load(path)


def _soak(seed: int) -> list[object]:
    terrible = TerribleNetwork(http_error=0.2, rate_limited=0.2, drop_event=0.3, delay=0.2)
    plan = FaultPlan(terrible=terrible, seed=seed)
    targets = ["http:GET /a", "ws:event:posted", "sse:event:session.idle", "sse:heartbeat"]
    return [plan.decide(t) for _ in range(50) for t in targets]


def test_the_terrible_network_is_random_but_reproducible_by_seed() -> None:
    first, again, other = _soak(1), _soak(1), _soak(2)
    assert first == again
    assert first != other
    kinds = {type(o).__name__ for o in first}
    assert {"Ok", "Status", "Drop", "Delay"} <= kinds
    # Events are never answered with an HTTP status; HTTP requests are never "dropped events".
    assert all(not isinstance(o, Status) for o in first[1::4])
    assert all(not isinstance(o, Drop) for o in first[0::4])


async def test_a_terrible_network_soak_against_the_emulator_loses_nothing_acknowledged() -> None:
    """A seeded soak: the client retries what failed; every acknowledged post is stored once."""
    import httpx
    import trio

    from mmthreads.harness.mattermost import open_mattermost_emulator

    plan = FaultPlan(
        terrible=TerribleNetwork(http_error=0.15, rate_limited=0.1, delay=0.1, max_delay=0.01),
        seed=11,
    )
    acknowledged: list[str] = []
    with trio.fail_after(30):
        async with open_mattermost_emulator(plan=plan) as mm:
            bot = mm.create_user("bot", bot=True)
            alice = mm.create_user("alice")
            channel = mm.emulator.direct_channel(alice, bot)
            headers = {"Authorization": f"Bearer {alice.token}"}
            async with httpx.AsyncClient(base_url=mm.url, headers=headers) as client:
                for n in range(40):
                    for _attempt in range(20):
                        body = {"channel_id": channel.id, "message": f"message {n}"}
                        response = await client.post("/api/v4/posts", json=body)
                        if response.status_code == 201:
                            acknowledged.append(response.json()["id"])
                            break
                        assert response.status_code in (429, 500, 502, 503)
            stored = [p.message for p in mm.posts_in(channel.id)]
    assert len(acknowledged) == 40
    # Failed requests stored nothing: each message is there exactly once, in order.
    assert stored == [f"message {n}" for n in range(40)]
    kinds = {type(r.outcome).__name__ for r in plan.recorded("http:POST /api/v4/posts")}
    assert {"Status", "Delay"} <= kinds
