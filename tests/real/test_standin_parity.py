"""The OpenCode stand-in checked against the real server: one scenario, the same results.

The bridge plays the same scenario against each: a session created through the API, a plain
text turn, then a tool turn whose bash call the owner approves with ✅.  Both runs must give
the same sequence of event types per session on ``/event`` (once the noise both servers may
send at their own pace is left out) and the same thread contents in Mattermost (once ids,
times, durations and token counts are masked).  The real server is the truth: a difference
is a bug of the stand-in.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import httpx
import trio

from mmthreads.harness.opencode import open_opencode_standin
from mmthreads.harness.real_opencode import make_git_project
from tests.conformance.conftest import CHUNK_DELAY, EventLog
from tests.real.conftest import WATCHDOG, open_bridge, wait_permission_card

if TYPE_CHECKING:
    from pathlib import Path

    from mmthreads.harness.mattermost import Post
    from tests.real.conftest import Bridge, Server

#: Event types left out of the comparison: stream keep-alives, instance and file-system chatter,
#: and the diff summaries, whose number and position vary from run to run on the real server.
NOISE: Final = frozenset(
    {
        "server.connected",
        "server.heartbeat",
        "server.instance.disposed",
        "session.diff",
        "file.edited",
        "file.watcher.updated",
        "lsp.updated",
        "lsp.client.diagnostics",
        "installation.updated",
        "installation.update-available",
        "plugin.added",
        "project.updated",
        "vcs.branch.updated",
        "catalog.updated",
        "reference.updated",
        "integration.updated",
    }
)

_MASKS: Final = [
    (re.compile(r"ses_[0-9A-Za-z]+"), "ses_ID"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"), "TIME"),
    (re.compile(r"\((\d+ms|\d+\.\ds|\d+m \d+s)\)"), "(DURATION)"),
    (re.compile(r"in (\d+ms|\d+\.\ds|\d+m \d+s) ·"), "in DURATION ·"),
    (re.compile(r"tokens: .*"), "tokens: COUNTS"),
]


def _session_of(event: dict[str, Any]) -> str | None:
    props = event.get("properties", {})
    sid = (
        props.get("sessionID")
        or props.get("part", {}).get("sessionID")
        or props.get("info", {}).get("sessionID")
    )
    return sid if isinstance(sid, str) else None


def label(event: dict[str, Any]) -> str:
    """An event's type, refined by what tells the steps of a turn apart."""
    kind: str = event["type"]
    props = event["properties"]
    if kind == "message.updated":
        return f"{kind}:{props['info']['role']}"
    if kind == "message.part.updated":
        part = props["part"]
        state = part.get("state", {}).get("status")
        return f"{kind}:{part['type']}" + (f":{part['tool']}:{state}" if state else "")
    if kind == "session.status":
        return f"{kind}:{props['status']['type']}"
    return kind


def event_types(events: list[dict[str, Any]], session_id: str) -> tuple[list[str], Counter[str]]:
    """The session's event labels in order, and the summary events counted by label.

    Noise is left out.  The summary events (``session.updated``, and a user message
    announced again) are computed in the background by the real server, so their position
    among the turn's events varies from run to run: they are counted, not placed.
    """
    ordered: list[str] = []
    summary: Counter[str] = Counter()
    seen_users: set[str] = set()
    for event in events:
        if event["type"] in NOISE or _session_of(event) != session_id:
            continue
        kind = label(event)
        if kind == "message.updated:user":
            message_id = event["properties"]["info"]["id"]
            if message_id in seen_users:
                summary[kind] += 1
                continue
            seen_users.add(message_id)
        if kind == "session.updated":
            summary[kind] += 1
            continue
        ordered.append(kind)
    return settle_races(ordered), summary


def settle_races(labels: list[str]) -> list[str]:
    """Put the events the real server sends from concurrent tasks in one canonical order.

    The first ``running`` snapshot of a tool call that needs a permission and the
    ``permission.asked`` come from two concurrent tasks of the real server: either comes first.
    The canonical order is the one seen most often (and the stand-in's): running, then asked.
    """
    settled = list(labels)
    for i in range(len(settled) - 1):
        if settled[i] == "permission.asked" and settled[i + 1].endswith(":running"):
            settled[i], settled[i + 1] = settled[i + 1], settled[i]
    return settled


def is_idle_of(event: dict[str, Any], session_id: str) -> bool:
    """Whether the event is the session's ``session.idle``."""
    return event["type"] == "session.idle" and _session_of(event) == session_id


def is_user_message(event: dict[str, Any], session_id: str) -> bool:
    """Whether the event announces (again) one of the session's user messages."""
    return label(event) == "message.updated:user" and _session_of(event) == session_id


async def wait_last_summary(log: EventLog, session_id: str, *, turns: int) -> None:
    """Wait for the scenario's last event: the summary after the last turn's idle.

    The real server sends that summary a moment after the idle, the stand-in at once.
    """
    start = 0
    for _ in range(turns):
        idle = await log.wait_for(lambda e: is_idle_of(e, session_id), start=start)
        start = next(i for i, e in enumerate(log.events) if e is idle) + 1
    await log.wait_for(lambda e: is_user_message(e, session_id), start=start)


def masked(post: Post) -> str:
    """A post's text with what differs between any two runs masked."""
    text = post.message
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


async def play(
    bridge: Bridge, url: str, project: Path
) -> tuple[tuple[list[str], Counter[str]], list[str]]:
    """Play the scenario through the bridge; the event types and the masked thread."""
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        log = EventLog(client, project)
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            running = await bridge.start()
            response = await client.post("/session", params={"directory": str(project)}, json={})
            session_id = response.json()["id"]
            root = await bridge.root_of(session_id)

            first = await bridge.prompt(root, "hello parity check")
            await bridge.answer(root.id, after=first)
            second = await bridge.prompt(root, "USE_TOOLS please")
            card = await wait_permission_card(bridge, root)
            await bridge.human.react(card.id, "white_check_mark")
            await bridge.answer(root.id, after=second)
            # The title the bridge shows, once generated.
            await bridge.mm.wait_post(
                lambda p: p.id == root.id and "not generated yet" not in p.message
            )
            await wait_last_summary(log, session_id, turns=2)
            await running.stop()
            await log.aclose()
            nursery.cancel_scope.cancel()
    return event_types(log.events, session_id), [masked(p) for p in bridge.thread(root.id)]


async def test_the_standin_plays_the_scenario_as_the_real_server_does(
    shared_real: Server, tmp_path: Path
) -> None:
    # The same directory path for both, so the root posts can be compared as they are.
    project = make_git_project(tmp_path / "parity")
    with trio.fail_after(WATCHDOG):
        async with open_bridge(shared_real.url, tmp_path / "real") as bridge:
            real_events, real_thread = await play(bridge, shared_real.url, project)
        async with (
            open_opencode_standin(directory=str(project), chunk_delay=CHUNK_DELAY) as standin,
            open_bridge(standin.url, tmp_path / "standin") as bridge,
        ):
            standin_events, standin_thread = await play(bridge, standin.url, project)
    # The same posts; the root first.  The permission card and the answer post are created by
    # different tasks of the bridge, so which of the two comes first depends on timing alone.
    assert standin_thread[0] == real_thread[0]
    assert sorted(standin_thread) == sorted(real_thread)
    assert standin_events == real_events
