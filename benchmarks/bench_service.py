"""Service benchmark: the whole bridge against the harness, with many sessions streaming at once.

Run it as ``python -m benchmarks.bench_service [--sessions 10,100,1000]``.  For each size it
runs, in a fresh child process:

- ``baseline``: the Mattermost emulator and the OpenCode stand-in on 127.0.0.1, with the same
  sessions and turns, and no bridge;
- ``bridge``: the same harness, and ``mmthreads run`` in a process of its own (as in
  production: the servers are other processes), with default settings except the edit
  interval (``--edit-interval``, 1.0 s by default) and the flood limit (lifted: one owner
  prompts every thread at once).

A run creates N sessions at once (in ten directories), waits for their thread roots, then the
owner replies in every thread at once (the replies are stored in the emulator directly, so the
harness's HTTP client does not weigh on the figures) and the run waits until every thread shows
its completion line.  The baseline stores the same roots and replies and prompts the stand-in
itself, as the bridge would.  Each run stops by itself once its budget (``BUDGET``) is spent
and reports what it has; the bridge is then stopped with SIGTERM.

Instrumentation, on ``time.monotonic()`` in the harness's process: the stand-in's bus gets a
hook that stamps each published event (``session.created``, ``message.part.delta``); the
emulator's ``flush`` stamps each broadcast ``posted``/``post_edited`` event, i.e. the moment a
post or an edit was applied.  A delta counts as visible when the first post or edit of its
session's thread whose message contains the part's text so far is applied.  The posts are
decoded after the measured window, so the analysis costs no CPU inside it.

Figures: root latency (``session.created`` to the root post), delta-to-visible latency,
Mattermost requests of the bot per turn prompted (by route), how often the bridge subscribed to
the stand-in's event stream (more than once means the stream was cut and resumed), the bridge
process's CPU seconds per 1,000 stand-in events in the measured window (``/proc/<pid>/stat``)
and its peak RSS (``ru_maxrss`` of the child), with the harness's own figures from the
baseline run beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec
import trio

from benchmarks.table import format_table
from mmthreads.core.render import session_id_from_props
from mmthreads.harness.mattermost import MattermostEmulator, open_mattermost_emulator
from mmthreads.harness.opencode import open_opencode_standin

if TYPE_CHECKING:
    from collections.abc import Callable

    from mmthreads.harness.opencode import BusEvent
    from mmthreads.harness.opencode.server import OpenCodeStandInHandle

#: Seconds between streamed chunks of the stand-in's replies.
CHUNK_DELAY: Final = 0.05
#: Words in each prompt; the stub echoes it, so a reply streams about this many chunks.
PROMPT_WORDS: Final = 20
#: Seconds a whole run of one size may take (sessions, roots, turns), then it stops.
BUDGET: Final = {10: 30.0, 100: 60.0, 1000: 120.0}
DEFAULT_BUDGET: Final = 120.0
#: Extra seconds for the child process to start, stop and report before it is killed.
GRACE: Final = 30.0
#: Seconds between two checks for completion (cheap scans of the emulator's posts).
POLL: Final = 0.2
DONE_MARK: Final = ":checkered_flag: **Done**"
DIRECTORIES: Final = 10

_ID: Final = re.compile(r"/[a-z0-9]{26}(?=/|$)")


@dataclass
class RunResult:
    """What one child run reports (JSON on stdout)."""

    mode: str
    sessions: int
    roots: int = 0
    turns_done: int = 0
    finished: bool = False
    wall: float = 0.0
    cpu: float = 0.0
    events: int = 0
    rss_mb: float = 0.0
    root_latencies: list[float] = field(default_factory=list)
    visible_latencies: list[float] = field(default_factory=list)
    deltas_seen: int = 0
    deltas_total: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    #: Event-stream subscriptions the stand-in served (1 when the stream never broke).
    streams: int = 0


class _StampedEmulator(MattermostEmulator):
    """The emulator, stamping the moment each broadcast event was produced."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []

    def flush(self) -> None:
        super().flush()
        now = time.monotonic()
        self.stamps.extend([now] * (len(self.events) - len(self.stamps)))


def _prompt(n: int, words: int) -> str:
    return f"bench {n}: " + " ".join(f"word{n}-{k}" for k in range(words))


def _rss_mb() -> float:
    # Linux reports kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _wait(check: Callable[[], bool], deadline: float) -> bool:
    """Poll ``check()`` until it is true or the monotonic ``deadline`` passes."""
    while not check():
        if time.monotonic() >= deadline:
            return False
        await trio.sleep(POLL)
    return True


async def _run(
    sessions: int, mode: str, budget: float, words: int, chunk_delay: float, interval: float
) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="mmthreads-bench-") as name:
        return await _run_in(Path(name), sessions, mode, budget, words, chunk_delay, interval)


async def _run_in(
    tmp: Path,
    sessions: int,
    mode: str,
    budget: float,
    words: int,
    chunk_delay: float,
    interval: float,
) -> RunResult:
    """One run with its files under ``tmp``; stops by itself once ``budget`` is spent."""
    result = RunResult(mode=mode, sessions=sessions)
    with_bridge = mode == "bridge"
    emulator = _StampedEmulator()
    deadline = time.monotonic() + budget
    async with (
        open_mattermost_emulator(emulator=emulator) as mm,
        open_opencode_standin(directory=str(tmp), chunk_delay=chunk_delay) as oc,
        trio.open_nursery() as nursery,
    ):
        bot = mm.create_user("mmthreads", bot=True)
        owner = mm.create_user("alice")
        dm = await mm.human(owner).dm_with(bot)
        env = {
            "HOME": str(tmp),
            "MATTERMOST_URL": mm.url,
            "MATTERMOST_TOKEN": bot.token,
            "MATTERMOST_OWNER_USER_ID": owner.id,
            "OPENCODE_URL": oc.url,
        }
        # One owner prompts every thread at once: far past a person's flood limit, on purpose.
        config = tmp / "bridge.toml"
        config.write_text(
            f"[stream]\nedit_interval = {interval}\n"
            f"[flood]\nburst = {max(sessions, 1) * 2}\nrefill_interval = 0.001\n"
        )
        bus = oc.standin.state.bus
        notify = bus.on_publish
        oc_stamps: list[float] = []

        def stamp(event: BusEvent) -> None:
            oc_stamps.extend([time.monotonic()] * (len(bus.log) - len(oc_stamps)))
            if notify is not None:
                notify(event)

        bus.on_publish = stamp
        bridge: trio.Process | None = None
        if with_bridge:
            bridge = await _start_bridge(tmp, env, config, emulator, bot.id, oc, deadline)
        events_before = len(bus.log)
        oc_stamps.extend([0.0] * events_before)
        posts = emulator.state.posts
        cpu0 = _process_cpu(bridge.pid) if bridge is not None else time.process_time()
        wall0 = time.monotonic()

        # Phase 1: N sessions at once; wait for their roots.
        created = [
            oc.create_session(str(tmp / f"project-{n % DIRECTORIES}"), f"bench {n}")
            for n in range(sessions)
        ]

        def roots() -> int:
            return sum(1 for p in posts.values() if not p.root_id and p.user_id == bot.id)

        if with_bridge:
            await _wait(lambda: roots() >= sessions, deadline)
        requests_mark = len(emulator.requests)

        # Phase 2: the owner prompts every thread at once (stored in the emulator directly,
        # so the harness's own HTTP client does not weigh on the figures; the bridge gets the
        # ``posted`` events on its WebSocket as usual).  Without the bridge, the harness does
        # the same work: the roots are stored directly, the prompts too, and each session is
        # prompted in the stand-in, as the bridge would.
        root_of: dict[str, str] = {}
        for post in list(posts.values()):
            session_id = session_id_from_props(post.props or {})
            if session_id is not None and not post.root_id:
                root_of[session_id] = post.id
        if not with_bridge:
            for session in created:
                root_of[session.id] = emulator.post_as(bot, dm.id, f"root of {session.id}").id

        for n, session in enumerate(created):
            root_id = root_of.get(session.id)
            if root_id is None:
                continue
            emulator.post_as(owner, dm.id, _prompt(n, words), root_id=root_id)
            if not with_bridge:
                oc.prompt(session.id, _prompt(n, words))

        def finished() -> int:
            if with_bridge:
                return len(
                    {
                        p.root_id
                        for p in posts.values()
                        if p.root_id and p.user_id == bot.id and DONE_MARK in p.message
                    }
                )
            return sum(1 for s in created if oc.standin.is_idle(s.id))

        result.finished = await _wait(lambda: finished() >= sessions, deadline)
        result.wall = time.monotonic() - wall0
        result.events = len(bus.log) - events_before
        result.roots = roots()
        result.turns_done = finished()
        bot_requests = [r for r in emulator.requests[requests_mark:] if r.user_id == bot.id]
        routes = (f"{r.method} {_ID.sub('/{id}', r.path)}" for r in bot_requests)
        result.requests = dict(Counter(routes))
        result.streams = sum(1 for r in oc.standin.requests if r.path.endswith("/event"))
        if bridge is not None:
            result.cpu = _process_cpu(bridge.pid) - cpu0
            await _stop_bridge(bridge)
            # The bridge's peak RSS: it is this process's only waited-for child.
            result.rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        else:
            result.cpu = time.process_time() - cpu0
            result.rss_mb = _rss_mb()
        nursery.cancel_scope.cancel()

    _latencies(result, bus.log, oc_stamps, emulator, dm.id)
    return result


async def _start_bridge(
    tmp: Path,
    env: dict[str, str],
    config: Path,
    emulator: MattermostEmulator,
    bot_id: str,
    oc: OpenCodeStandInHandle,
    deadline: float,
) -> trio.Process:
    """``mmthreads run`` in its own process; returns once it follows both servers."""
    argv = [sys.executable, "-m", "mmthreads", "run", "--config", str(config)]
    argv += ["--mapping-file", str(tmp / "threads.json"), "--log-level", "ERROR"]
    process = await trio.lowlevel.open_process(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # Up: its WebSocket is attached and it follows the stand-in's event stream.
    await _wait(
        lambda: (
            any(r.user_id == bot_id for r in emulator.connects)
            and any(r.path.endswith("/event") for r in oc.standin.requests)
        ),
        deadline,
    )
    return process


async def _stop_bridge(process: trio.Process) -> None:
    """SIGTERM, as a service manager would; killed if it is not gone within the grace."""
    process.terminate()
    with trio.move_on_after(GRACE):
        await process.wait()
        return
    process.kill()
    await process.wait()


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime and stime: fields 14 and 15 of stat
    return ticks / os.sysconf("SC_CLK_TCK")


def _latencies(
    result: RunResult,
    log: list[BusEvent],
    oc_stamps: list[float],
    emulator: _StampedEmulator,
    dm_id: str,
) -> None:
    """Match stand-in events with the posts and edits that made them visible."""
    created_at: dict[str, float] = {}
    # Per session: (time, cumulative text) of each text delta.
    deltas: dict[str, list[tuple[float, str]]] = {}
    texts: dict[str, str] = {}
    text_parts: set[str] = set()
    for event, at in zip(log, oc_stamps, strict=False):
        if event.type == "session.created":
            created_at[event.properties["info"]["id"]] = at
        elif event.type == "message.part.updated":
            part = event.properties["part"]
            if part.get("type") == "text":
                text_parts.add(part["id"])
        elif event.type == "message.part.delta":
            props = event.properties
            if props["partID"] not in text_parts or props.get("field") != "text":
                continue
            texts[props["partID"]] = texts.get(props["partID"], "") + props["delta"]
            deltas.setdefault(props["sessionID"], []).append((at, texts[props["partID"]]))
    # Per session: (time, message) of every post and edit in its thread, in order.
    session_of_root: dict[str, str] = {}
    shown: dict[str, list[tuple[float, str]]] = {}
    for ws_event, at in zip(emulator.events, emulator.stamps, strict=False):
        if ws_event.event not in ("posted", "post_edited"):
            continue
        post = msgspec.json.decode(ws_event.data["post"])
        if post.get("channel_id") != dm_id:
            continue
        root_id = post.get("root_id") or ""
        if not root_id:
            session_id = session_id_from_props(post.get("props") or {})
            if session_id is None:
                continue
            if ws_event.event == "posted" and session_id in created_at:
                result.root_latencies.append(at - created_at[session_id])
            session_of_root[post["id"]] = session_id
            continue
        owner = session_of_root.get(root_id)
        if owner is not None:
            shown.setdefault(owner, []).append((at, post.get("message", "")))
    for session_id, emitted in deltas.items():
        views = shown.get(session_id, [])
        start = 0
        for at, text in emitted:
            result.deltas_total += 1
            needle = text.strip()
            while start < len(views) and views[start][0] < at:
                start += 1
            for seen_at, message in views[start:]:
                if needle in message:
                    result.visible_latencies.append(seen_at - at)
                    result.deltas_seen += 1
                    break


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 1000:.0f} ms"


def _child(
    sessions: int, mode: str, budget: float, words: int, chunk_delay: float, interval: float
) -> None:
    logging.basicConfig(level=logging.ERROR)
    result = trio.run(_run, sessions, mode, budget, words, chunk_delay, interval)
    sys.stdout.write(json.dumps(asdict(result)) + "\n")


def _spawn(
    sessions: int, mode: str, words: int, chunk_delay: float, interval: float
) -> RunResult | str:
    budget = BUDGET.get(sessions, DEFAULT_BUDGET)
    argv = [sys.executable, "-m", "benchmarks.bench_service", "--child", mode]
    argv += ["--sessions", str(sessions), "--words", str(words)]
    argv += ["--chunk-delay", str(chunk_delay), "--edit-interval", str(interval)]
    try:
        done = subprocess.run(  # our own module, fixed arguments
            argv, capture_output=True, text=True, timeout=budget + GRACE, check=False
        )
    except subprocess.TimeoutExpired:
        return f"killed after {budget + GRACE:.0f} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"failed ({done.returncode}): {tail[0]}"
    return RunResult(**json.loads(lines[-1]))


def _rows(sessions: int, bridge: RunResult | str, base: RunResult | str) -> list[list[str]]:
    title = f"{sessions} sessions"
    if isinstance(bridge, str):
        return [[f"{title}: bridge run", bridge, ""]]
    rows: list[list[str]] = []
    state = "all done" if bridge.finished else "NOT all done in the budget"
    rows.append(
        [
            f"{title}: completed",
            f"{bridge.roots} roots, {bridge.turns_done} turns in {bridge.wall:.1f} s ({state})",
            "",
        ]
    )
    rows.append(
        [
            f"{title}: root post p50 / p99",
            f"{_ms(_percentile(bridge.root_latencies, 0.5))} / "
            f"{_ms(_percentile(bridge.root_latencies, 0.99))}",
            "p99 < 1 s",
        ]
    )
    target = "p50 < 250 ms, p99 < 1.5 s" if sessions == 100 else "(set at 100 sessions)"
    rows.append(
        [
            f"{title}: delta visible p50 / p99",
            f"{_ms(_percentile(bridge.visible_latencies, 0.5))} / "
            f"{_ms(_percentile(bridge.visible_latencies, 0.99))}"
            f" ({bridge.deltas_seen}/{bridge.deltas_total} deltas seen)",
            target,
        ]
    )
    turns = max(1, bridge.sessions)  # one turn prompted per session
    total = sum(bridge.requests.values())
    by_route = ", ".join(
        f"{route} {count / turns:.1f}"
        for route, count in sorted(bridge.requests.items(), key=lambda kv: -kv[1])
    )
    rows.append([f"{title}: MM requests per turn", f"{total / turns:.1f} ({by_route})", ""])
    rows.append([f"{title}: OpenCode event-stream connects", str(bridge.streams), "1"])
    if isinstance(base, RunResult):
        base_cpu = f"; harness alone {1000 * base.cpu / max(1, base.events):.2f}"
        base_rss = f"; harness alone {base.rss_mb:.0f} MB"
    else:
        base_cpu = base_rss = f"; harness alone: {base}"
    rows.append(
        [
            f"{title}: bridge CPU s per 1,000 events",
            f"{1000 * bridge.cpu / max(1, bridge.events):.2f} ({bridge.events} events,"
            f" {bridge.cpu:.1f} s){base_cpu}",
            "",
        ]
    )
    rss_target = "< 300 MB" if sessions == 1000 else ""
    rows.append([f"{title}: bridge peak RSS", f"{bridge.rss_mb:.0f} MB{base_rss}", rss_target])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the sizes given with ``--sessions`` and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_service")
    parser.add_argument("--sessions", default="10,100,1000", help="comma-separated sizes")
    parser.add_argument("--words", type=int, default=PROMPT_WORDS, help="words per prompt")
    parser.add_argument(
        "--chunk-delay", type=float, default=CHUNK_DELAY, help="seconds between streamed chunks"
    )
    parser.add_argument(
        "--edit-interval", type=float, default=1.0, help="the bridge's stream.edit_interval"
    )
    parser.add_argument("--child", choices=("bridge", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sessions.split(",") if s.strip()]
    if args.child:
        budget = BUDGET.get(sizes[0], DEFAULT_BUDGET)
        _child(sizes[0], args.child, budget, args.words, args.chunk_delay, args.edit_interval)
        return 0
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"chunk delay {args.chunk_delay} s, {args.words}-word prompts,"
        f" edit interval {args.edit_interval} s,"
        " one process per run\n"
    )
    rows: list[list[str]] = []
    for sessions in sizes:
        bridge = _spawn(sessions, "bridge", args.words, args.chunk_delay, args.edit_interval)
        base = _spawn(sessions, "baseline", args.words, args.chunk_delay, args.edit_interval)
        rows += _rows(sessions, bridge, base)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
